package transport

// The internode messages' Go code is generated from pb/internode.proto and committed.
// Regenerate with `go generate ./internal/transport/` (needs protoc; the Go plugin is the
// version pinned as a tool in go.mod).
//go:generate sh -c "cd pb && protoc --plugin=protoc-gen-go=\"$(go tool -n protoc-gen-go)\" --go_out=. --go_opt=paths=source_relative internode.proto"
