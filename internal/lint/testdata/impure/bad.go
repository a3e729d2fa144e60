package impure

import (
	"net"
	"os"
	"time"
)

func bad() {
	ch := make(chan int)
	go func() { ch <- 1 }()
	_ = time.Now()
	_, _ = net.Dial("tcp", "x")
	_ = os.Getenv("X")
	<-ch
	select {}
}
