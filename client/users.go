package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
)

// Roles a grant may give (docs/security.md): write includes read, admin includes write.
const (
	RoleRead  = "read"
	RoleWrite = "write"
	RoleAdmin = "admin"
)

// Grant is a role on one bucket, or on every bucket when Bucket is "".
type Grant struct {
	Role   string `json:"role"`
	Bucket string `json:"bucket,omitempty"`
}

// User is a user as GET /v1/users answers it: never with a password or its hash.
type User struct {
	Name   string  `json:"name"`
	Grants []Grant `json:"grants"`
}

func userPath(name string, tail string) (string, error) {
	if name == "" {
		return "", errors.New("client: empty user name")
	}
	return "/v1/users/" + url.PathEscape(name) + tail, nil
}

// Users lists the cluster's users (admin only).
func (c *Client) Users(ctx context.Context) ([]User, error) {
	var out struct {
		Users []User `json:"users"`
	}
	err := c.getJSON(ctx, "/v1/users", &out)
	return out.Users, err
}

// PutUser creates or updates a user (admin only). password "" keeps the existing one
// (a new user needs one); grants nil keeps the existing grants.
func (c *Client) PutUser(ctx context.Context, name, password string, grants []Grant) (User, error) {
	p, err := userPath(name, "")
	if err != nil {
		return User{}, err
	}
	body := map[string]any{}
	if password != "" {
		body["password"] = password
	}
	if grants != nil {
		body["grants"] = grants
	}
	var u User
	err = c.sendJSON(ctx, http.MethodPut, p, body, &u)
	return u, err
}

// RemoveUser deletes a user (admin only).
func (c *Client) RemoveUser(ctx context.Context, name string) error {
	p, err := userPath(name, "")
	if err != nil {
		return err
	}
	return c.sendJSON(ctx, http.MethodDelete, p, nil, nil)
}

// GrantUser adds a grant to a user (admin only).
func (c *Client) GrantUser(ctx context.Context, name string, g Grant) (User, error) {
	return c.changeGrant(ctx, name, "/grant", g)
}

// RevokeUser removes a grant from a user (admin only).
func (c *Client) RevokeUser(ctx context.Context, name string, g Grant) (User, error) {
	return c.changeGrant(ctx, name, "/revoke", g)
}

func (c *Client) changeGrant(ctx context.Context, name, tail string, g Grant) (User, error) {
	p, err := userPath(name, tail)
	if err != nil {
		return User{}, err
	}
	var u User
	err = c.sendJSON(ctx, http.MethodPost, p, g, &u)
	return u, err
}
