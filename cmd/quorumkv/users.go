package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/quorumkv/quorumkv/client"
)

func init() {
	register(&command{name: "user", group: "Cluster",
		args:    "add|remove|list|grant|revoke [NAME] [--role read|write|admin] [--bucket B] [--password P]",
		summary: "manage users and their grants (admin)", run: runUser})
}

func runUser(e *env, args []string) int {
	c := lookup("user")
	fs := e.flags(c, `
Manages the cluster's users (kept in the cluster metadata, the same on every node):

  user add NAME --role ROLE [--bucket B] [--password P]   create NAME (or set its password)
  user remove NAME                                         delete NAME
  user list                                                list users and grants
  user grant NAME --role ROLE [--bucket B]                 add a grant
  user revoke NAME --role ROLE [--bucket B]                remove a grant

Roles: read, write (includes read), admin (includes write; on every bucket it also
covers repair, hints, cluster changes, users and debug). Without --bucket a grant
covers every bucket. Without --password, add reads the password from the first line of
stdin (a flag shows in ps and shell history). Needs a user with the admin role when
the nodes run --auth: --user NAME, password in $QUORUMKV_PASSWORD.`)
	cf := e.addClientFlags(fs, false)
	role := fs.String("role", "", "`role`: read, write or admin")
	bucket := fs.String("bucket", "", "`bucket` the grant covers (empty: every bucket)")
	password := fs.String("password", "", "new user's `password` (default: read from stdin)")
	asJSON := fs.Bool("json", false, "list: print JSON")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return usageErr(fs, "want a subcommand: add, remove, list, grant or revoke")
	}
	sub, rest := pos[0], pos[1:]
	wantName := func() (string, bool) {
		if len(rest) != 1 {
			return "", false
		}
		return rest[0], true
	}
	cl := cf.client()
	ctx := context.Background()
	grant := client.Grant{Role: *role, Bucket: *bucket}
	switch sub {
	case "list":
		if len(rest) != 0 {
			return usageErr(fs, "user list takes no argument")
		}
		users, err := cl.Users(ctx)
		if err != nil {
			return e.apiFail(err, "")
		}
		if *asJSON {
			b, _ := json.MarshalIndent(users, "", "  ")
			fmt.Fprintf(e.stdout, "%s\n", b)
			return exitOK
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tGRANTS")
		for _, u := range users {
			var gs []string
			for _, g := range u.Grants {
				if g.Bucket == "" {
					gs = append(gs, g.Role)
				} else {
					gs = append(gs, g.Role+" on "+g.Bucket)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\n", u.Name, dash(strings.Join(gs, ", ")))
		}
		tw.Flush()
		return exitOK
	case "add":
		name, ok := wantName()
		if !ok {
			return usageErr(fs, "want: user add NAME --role ROLE")
		}
		if *role == "" {
			return usageErr(fs, "user add needs --role read, write or admin")
		}
		pw := *password
		if pw == "" {
			line, err := bufio.NewReader(e.stdin).ReadString('\n')
			pw = strings.TrimRight(line, "\r\n")
			if pw == "" {
				return usageErr(fs, "no password: give --password or one line on stdin (%v)", err)
			}
		}
		u, err := cl.PutUser(ctx, name, pw, []client.Grant{grant})
		if err != nil {
			return e.apiFail(err, "")
		}
		fmt.Fprintf(e.stdout, "user %s stored\n", u.Name)
		return exitOK
	case "remove":
		name, ok := wantName()
		if !ok {
			return usageErr(fs, "want: user remove NAME")
		}
		if err := cl.RemoveUser(ctx, name); err != nil {
			return e.apiFail(err, "")
		}
		fmt.Fprintf(e.stdout, "user %s removed\n", name)
		return exitOK
	case "grant", "revoke":
		name, ok := wantName()
		if !ok || *role == "" {
			return usageErr(fs, "want: user %s NAME --role ROLE [--bucket B]", sub)
		}
		var err error
		if sub == "grant" {
			_, err = cl.GrantUser(ctx, name, grant)
		} else {
			_, err = cl.RevokeUser(ctx, name, grant)
		}
		if err != nil {
			return e.apiFail(err, "")
		}
		fmt.Fprintf(e.stdout, "user %s: %s %s\n", name, map[string]string{"grant": "granted", "revoke": "revoked"}[sub], grantText(grant))
		return exitOK
	}
	return usageErr(fs, "unknown subcommand %q: want add, remove, list, grant or revoke", sub)
}

func grantText(g client.Grant) string {
	if g.Bucket == "" {
		return g.Role + " on every bucket"
	}
	return g.Role + " on bucket " + g.Bucket
}
