package transport

// The internode protocol's Go code is generated from pb/internode.proto and committed.
// Regenerate with `go generate ./internal/transport/` (needs protoc; the Go plugins are the
// versions pinned as tools in go.mod).
//go:generate sh -c "cd pb && protoc --plugin=protoc-gen-go=\"$(go tool -n protoc-gen-go)\" --plugin=protoc-gen-go-grpc=\"$(go tool -n protoc-gen-go-grpc)\" --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative internode.proto"
