package impure

// An aliased import of time: the calls are time's, whatever the file calls it.

import t "time"

func alias() {
	_ = t.Now()
	_ = t.Tick(t.Second)
	_ = t.NewTimer(t.Second)
	f := t.AfterFunc // a reference is as bad as a call
	_ = f
}
