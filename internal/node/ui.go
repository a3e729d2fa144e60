package node

// Done is closed when the node starts closing. Background work that lives beside the node
// (the dashboard's metrics sampler, package ui) stops on it.
func (n *Node) Done() <-chan struct{} { return n.ctx.Done() }
