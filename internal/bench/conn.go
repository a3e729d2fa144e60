package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// conn is one client's HTTP/1.1 connection, driven from the client's own goroutine: the
// request is written and its response read in place, as wrk and redis-benchmark drive
// theirs. net/http's Transport hands each request to a writer goroutine and each response
// back from a reader goroutine, two wake-ups a request that cost the load generator as
// much CPU as a node spent on the request (docs/benchmarks.md), on a machine the
// generator shares with the cluster it measures. The requests and responses are still
// written and parsed by net/http (Request.Write, ReadResponse).
type conn struct {
	addr    string
	timeout time.Duration
	c       net.Conn
	stop    func() bool // ends the watch that breaks off c's exchange when ctx ends
	br      *bufio.Reader
	bw      *bufio.Writer
}

func newConn(addr string, timeout time.Duration) *conn {
	return &conn{addr: addr, timeout: timeout}
}

// do sends req and reads its response's body to the end; it returns the status. A
// failed exchange closes the connection (the next one dials again), as does a response
// that asks for it.
func (c *conn) do(ctx context.Context, req *http.Request) (int, error) {
	if c.c == nil {
		d := net.Dialer{Timeout: c.timeout}
		nc, err := d.DialContext(ctx, "tcp", c.addr)
		if err != nil {
			return 0, fmt.Errorf("dial %s: %w", c.addr, err)
		}
		c.c = nc
		// A cancelled run (Ctrl-C) breaks off the exchange in flight at once, rather than
		// after its timeout; one watch per connection, not one per request.
		c.stop = context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
		if c.br == nil {
			c.br, c.bw = bufio.NewReaderSize(nc, 16<<10), bufio.NewWriterSize(nc, 16<<10)
		} else {
			c.br.Reset(nc)
			c.bw.Reset(nc)
		}
	}
	if c.timeout > 0 {
		_ = c.c.SetDeadline(time.Now().Add(c.timeout))
	}
	if err := ctx.Err(); err != nil {
		return 0, err // cancelled since the watch fired: the deadline just set undid it
	}
	status, err := c.exchange(req)
	if err != nil {
		c.close()
	}
	return status, err
}

func (c *conn) exchange(req *http.Request) (int, error) {
	if err := req.Write(c.bw); err != nil {
		return 0, fmt.Errorf("%s %s: write: %w", req.Method, req.URL, err)
	}
	if err := c.bw.Flush(); err != nil {
		return 0, fmt.Errorf("%s %s: write: %w", req.Method, req.URL, err)
	}
	resp, err := http.ReadResponse(c.br, req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: read response: %w", req.Method, req.URL, err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, fmt.Errorf("%s %s: read body: %w", req.Method, req.URL, err)
	}
	if resp.Close {
		c.close()
	}
	return resp.StatusCode, nil
}

func (c *conn) close() {
	if c.c != nil {
		c.stop()
		_ = c.c.Close()
		c.c = nil
	}
}
