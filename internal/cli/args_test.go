package cli

import (
	"io"
	"slices"
	"testing"
)

func TestParseArgsReadsFlagsAnywhere(t *testing.T) {
	for _, c := range []struct {
		args        []string
		pos         []string
		config, ttl string
	}{
		{[]string{"okta", "--config", "c.yaml"}, []string{"okta"}, "c.yaml", ""},
		{[]string{"--config=c.yaml", "okta"}, []string{"okta"}, "c.yaml", ""},
		{[]string{"a", "--ttl", "never", "b", "-config", "c.yaml"}, []string{"a", "b"}, "c.yaml", "never"},
		{[]string{"--config", "c.yaml", "--", "-dash", "--ttl"}, []string{"-dash", "--ttl"}, "c.yaml", ""},
		{[]string{"--ttl", "-1h"}, nil, "", "-1h"},
	} {
		fs := newFlags("t", io.Discard)
		ttl := fs.String("ttl", "", "")
		pos, err := parseArgs(fs, c.args)
		if err != nil || !slices.Equal(pos, c.pos) || fs.Lookup("config").Value.String() != c.config || *ttl != c.ttl {
			t.Errorf("parseArgs(%q) = %q, %v; config %q ttl %q", c.args, pos, err, fs.Lookup("config").Value.String(), *ttl)
		}
	}
	if _, err := parseArgs(newFlags("t", io.Discard), []string{"x", "--bogus"}); err == nil {
		t.Error("an unknown flag after a positional argument passed")
	}
}

func TestSubcommandSkipsConfig(t *testing.T) {
	for _, c := range []struct {
		args []string
		sub  string
		rest []string
	}{
		{[]string{"revoke", "okta"}, "revoke", []string{"okta"}},
		{[]string{"--config", "c", "revoke", "okta"}, "revoke", []string{"--config", "c", "okta"}},
		{[]string{"--config=c", "list"}, "list", []string{"--config=c"}},
		{[]string{"--config", "c"}, "", []string{"--config", "c"}},
	} {
		sub, rest := subcommand(c.args)
		if sub != c.sub || !slices.Equal(rest, c.rest) {
			t.Errorf("subcommand(%q) = %q %q, want %q %q", c.args, sub, rest, c.sub, c.rest)
		}
	}
}
