package main
import (
 _ "github.com/cockroachdb/pebble"
 _ "github.com/hashicorp/memberlist"
 _ "google.golang.org/grpc"
 _ "google.golang.org/protobuf/proto"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "github.com/cespare/xxhash/v2"
 _ "pgregory.net/rapid"
)
func main(){}
