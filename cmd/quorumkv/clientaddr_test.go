package main

import "testing"

func TestNormalizeAddr(t *testing.T) {
	for in, want := range map[string]string{
		"8081":                      "127.0.0.1:8081",
		":8082":                     "127.0.0.1:8082",
		"db1:8080":                  "db1:8080",
		"https://db1:8443":          "https://db1:8443",
		"8081, 8082,db3:8080":       "127.0.0.1:8081,127.0.0.1:8082,db3:8080",
		"http://a:1,https://b:2/qk": "http://a:1,https://b:2/qk",
	} {
		if got := normalizeAddr(in); got != want {
			t.Errorf("normalizeAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
