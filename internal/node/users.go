package node

import (
	"fmt"
	"strings"
)

// metaUserPrefix keys users in the cluster metadata: "user/NAME" → the JSON record
// package auth writes (name, argon2id hash, grants). The node stores the bytes and never
// reads them: auth owns their meaning.
const metaUserPrefix = "user/"

// UserRecord returns user name's stored record (auth.Store).
func (n *Node) UserRecord(name string) ([]byte, bool) {
	return n.ms.GetMeta(metaUserPrefix + name)
}

// SetUserRecord stores user name's record in the gossiped, persisted cluster metadata.
func (n *Node) SetUserRecord(name string, raw []byte) error {
	if err := n.ms.SetMeta(metaUserPrefix+name, raw); err != nil {
		return fmt.Errorf("store user: %w", err)
	}
	return nil
}

// DeleteUserRecord removes user name everywhere (a metadata tombstone).
func (n *Node) DeleteUserRecord(name string) error {
	if err := n.ms.DeleteMeta(metaUserPrefix + name); err != nil {
		return fmt.Errorf("remove user: %w", err)
	}
	return nil
}

// UserNames lists the stored users.
func (n *Node) UserNames() []string {
	keys := n.ms.MetaKeys(metaUserPrefix)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, strings.TrimPrefix(k, metaUserPrefix))
	}
	return out
}
