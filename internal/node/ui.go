package node

// Go runs f on a goroutine the node owns, for work that lives beside the node, such as
// the dashboard's metrics sampler (package ui). done is closed when the node starts
// closing; f must return soon after. Close waits for f before it closes the store, so f
// may call the node's methods until it returns.
func (n *Node) Go(f func(done <-chan struct{})) {
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		f(n.ctx.Done())
	}()
}
