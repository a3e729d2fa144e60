package impure

// A dot import of time: the calls are bare names.

import . "time"

func dot() {
	_ = Now()
	Sleep(Second)
}
