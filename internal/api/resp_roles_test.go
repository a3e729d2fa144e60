package api

import "testing"

// TestEveryDataCommandNeedsAGrant: a command added to the table without a grant would run
// for any logged-in user, whatever their roles.
func TestEveryDataCommandNeedsAGrant(t *testing.T) {
	for name := range commands {
		_, granted := respRoles[name]
		if granted == loginOnly[name] {
			t.Errorf("command %q: in respRoles %v, login-only %v; want exactly one", name, granted, loginOnly[name])
		}
	}
	for name := range respRoles {
		if _, ok := commands[name]; !ok {
			t.Errorf("respRoles names %q, which is not a command", name)
		}
	}
}
