package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCRDTUpdates(t *testing.T) {
	c, got := fake(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	ctx := context.Background()
	q := Quorum{W: "quorum", PW: "1", DW: "0", R: "all", Timeout: 250 * time.Millisecond}
	if err := c.Increment(ctx, "hits", "a/b c", -3, q); err != nil {
		t.Fatal(err)
	}
	if err := c.Increment(ctx, "hits", "k", 0, Quorum{}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetAdd(ctx, "s", "k", []string{"x", "é\"y"}, Quorum{W: "1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetRemove(ctx, "s", "k", []string{"x"}, "CTX1", Quorum{}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetRemove(ctx, "s", "k", []string{"x"}, "", Quorum{}); err != nil {
		t.Fatal(err)
	}
	mapOp := map[string]any{"update": map[string]any{"n": map[string]any{"type": "counter", "increment": 1}}, "remove": []string{"old"}}
	if err := c.UpdateCRDT(ctx, "m", "k", mapOp, Quorum{}); err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateCRDT(ctx, "m", "k", json.RawMessage(`{"increment": 2}`), Quorum{}); err != nil {
		t.Fatal(err)
	}
	want := []recorded{
		{Method: "POST", RawPath: "/v1/crdt/hits/a%2Fb%20c", Path: "/v1/crdt/hits/a/b c", Query: "dw=0&pw=1&timeout=250&w=quorum", Accept: "application/json", Body: `{"increment":-3}`},
		{Method: "POST", RawPath: "/v1/crdt/hits/k", Path: "/v1/crdt/hits/k", Accept: "application/json", Body: `{"increment":0}`},
		{Method: "POST", RawPath: "/v1/crdt/s/k", Path: "/v1/crdt/s/k", Query: "w=1", Accept: "application/json", Body: `{"add":["x","é\"y"]}`},
		{Method: "POST", RawPath: "/v1/crdt/s/k", Path: "/v1/crdt/s/k", Accept: "application/json", Body: `{"remove":["x"],"context":"CTX1"}`},
		{Method: "POST", RawPath: "/v1/crdt/s/k", Path: "/v1/crdt/s/k", Accept: "application/json", Body: `{"remove":["x"]}`},
		{Method: "POST", RawPath: "/v1/crdt/m/k", Path: "/v1/crdt/m/k", Accept: "application/json", Body: `{"remove":["old"],"update":{"n":{"increment":1,"type":"counter"}}}`},
		{Method: "POST", RawPath: "/v1/crdt/m/k", Path: "/v1/crdt/m/k", Accept: "application/json", Body: `{"increment": 2}`},
	}
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("requests:\n%+v\nwant\n%+v", *got, want)
	}

	// Local refusals send nothing.
	n := len(*got)
	for name, err := range map[string]error{
		"SetAdd none":    c.SetAdd(ctx, "s", "k", nil, Quorum{}),
		"SetRemove none": c.SetRemove(ctx, "s", "k", []string{}, "", Quorum{}),
		"empty bucket":   c.Increment(ctx, "", "k", 1, Quorum{}),
		"empty key":      c.Increment(ctx, "b", "", 1, Quorum{}),
		"unmarshalable":  c.UpdateCRDT(ctx, "b", "k", func() {}, Quorum{}),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := c.GetCRDT(ctx, "b", "", Quorum{}); err == nil {
		t.Error("GetCRDT with an empty key: no error")
	}
	if len(*got) != n {
		t.Fatalf("local refusals sent %d requests", len(*got)-n)
	}
}

func TestCRDTUpdateErrors(t *testing.T) {
	c, _ := fake(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/crdt/b/wrong":
			writeJSON(w, 400, map[string]any{"error": "wrong operation: add on a counter", "code": "bad_request"})
		case "/v1/crdt/b/slow":
			writeJSON(w, 503, map[string]any{"error": "w not met", "code": "quorum_failed", "acks": 1, "required": 2})
		default:
			writeJSON(w, 409, map[string]any{"error": "the key holds a set", "code": "wrong_type"})
		}
	})
	ctx := context.Background()
	err := c.SetAdd(ctx, "b", "wrong", []string{"x"}, Quorum{})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Code != CodeBadRequest || !strings.Contains(ae.Message, "add on a counter") {
		t.Fatalf("wrong op: %v", err)
	}
	err = c.Increment(ctx, "b", "slow", 1, Quorum{})
	if !IsQuorumFailed(err) || !errors.As(err, &ae) || ae.Acks != 1 || ae.Required != 2 {
		t.Fatalf("quorum: %v", err)
	}
	if err := c.Increment(ctx, "b", "other", 1, Quorum{}); !errors.As(err, &ae) || ae.Status != 409 || ae.Code != "wrong_type" {
		t.Fatalf("wrong type: %v", err)
	}
}

func TestGetCRDT(t *testing.T) {
	c, got := fake(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/crdt/b/counter":
			writeJSON(w, 200, map[string]any{"value": -42, "context": ""})
		case "/v1/crdt/b/set":
			writeJSON(w, 200, map[string]any{"value": []string{"a", "b"}, "context": "CTX"})
		case "/v1/crdt/b/emptyset":
			writeJSON(w, 200, map[string]any{"value": []string{}, "context": "CTX0"})
		case "/v1/crdt/b/map":
			writeJSON(w, 200, map[string]any{"value": map[string]any{"n": 3, "s": []string{"x"}}, "context": "CTXM"})
		case "/v1/crdt/b/novalue":
			writeJSON(w, 200, map[string]any{"context": "x"})
		case "/v1/crdt/b/garbage":
			w.Write([]byte("<html>"))
		case "/v1/crdt/b/bad":
			writeJSON(w, 400, map[string]any{"error": "bucket holds plain values", "code": "bad_request"})
		case "/v1/crdt/b/html404":
			w.WriteHeader(404)
		default:
			writeJSON(w, 404, map[string]any{"error": "not found", "code": "not_found"})
		}
	})
	ctx := context.Background()

	v, err := c.GetCRDT(ctx, "b", "counter", Quorum{R: "all", PR: "2", W: "3", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r := (*got)[0]; r.Method != "GET" || r.Path != "/v1/crdt/b/counter" || r.Query != "pr=2&r=all&timeout=1000" || r.Accept != "application/json" {
		t.Fatalf("request %+v", r)
	}
	if n, err := v.Int(); err != nil || n != -42 || !v.Found || v.Context != "" {
		t.Fatalf("counter: %+v %d %v", v, n, err)
	}
	if _, err := v.Strings(); err == nil {
		t.Fatal("Strings of a counter: no error")
	}

	v, err = c.GetCRDT(ctx, "b", "set", Quorum{})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := v.Strings(); err != nil || !reflect.DeepEqual(s, []string{"a", "b"}) || v.Context != "CTX" {
		t.Fatalf("set: %+v %q %v", v, s, err)
	}
	if _, err := v.Int(); err == nil {
		t.Fatal("Int of a set: no error")
	}
	if _, err := v.Map(); err == nil {
		t.Fatal("Map of a set: no error")
	}
	v, err = c.GetCRDT(ctx, "b", "emptyset", Quorum{})
	if s, err2 := v.Strings(); err != nil || err2 != nil || s == nil || len(s) != 0 || v.Context != "CTX0" {
		t.Fatalf("empty set: %+v %q %v %v", v, s, err, err2)
	}

	v, err = c.GetCRDT(ctx, "b", "map", Quorum{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := v.Map()
	if err != nil || len(m) != 2 || string(m["n"]) != "3" || string(m["s"]) != `["x"]` {
		t.Fatalf("map: %+v %v", m, err)
	}

	for _, key := range []string{"missing", "html404"} {
		v, err = c.GetCRDT(ctx, "b", key, Quorum{})
		if err != nil || v.Found || v.Value != nil {
			t.Fatalf("%s: %+v %v", key, v, err)
		}
		if n, err := v.Int(); n != 0 || err != nil {
			t.Fatalf("%s: Int %d %v", key, n, err)
		}
		if s, err := v.Strings(); len(s) != 0 || s == nil || err != nil {
			t.Fatalf("%s: Strings %q %v", key, s, err)
		}
	}

	for _, key := range []string{"novalue", "garbage"} {
		if v, err := c.GetCRDT(ctx, "b", key, Quorum{}); err == nil {
			t.Fatalf("%s: no error, %+v", key, v)
		}
	}
	_, err = c.GetCRDT(ctx, "b", "bad", Quorum{})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Code != CodeBadRequest {
		t.Fatalf("bad: %v", err)
	}
}
