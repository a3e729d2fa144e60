package impure

// Contexts that start timers or goroutines, under the package's name and an alias.

import (
	"context"
	cx "context"
	"time"
)

func contexts(parent context.Context, deadline time.Time) {
	_, _ = context.WithTimeout(parent, time.Second)
	_, _ = context.WithDeadline(parent, deadline)
	_, _ = context.WithCancel(parent)
	_, _ = cx.WithTimeout(parent, time.Second)
}
