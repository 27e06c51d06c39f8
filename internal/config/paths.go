package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// SameFile reports whether paths a and b name the same file: the same
// path once made absolute and cleaned, or (when both exist) the same inode
// through a link.
func SameFile(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	aa, errA := filepath.Abs(a)
	ab, errB := filepath.Abs(b)
	if errA == nil && errB == nil && aa == ab {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// fileKeys lists the keys of c that name a file other than the admin
// socket, with their values.
func (c *Config) fileKeys() [][2]string {
	return [][2]string{
		{"state.path", c.State.Path},
		{"the config file", c.Path},
		{"server.tls_cert_file", c.Server.TLSCertFile},
		{"server.tls_key_file", c.Server.TLSKeyFile},
		{"cloudflare.api_token_file", c.Cloudflare.APITokenFile},
		{"state.dsn_file", c.State.DSNFile},
	}
}

// socketProblems: serve replaces what stands at admin.socket, so it must
// not name a file scimflare needs (with state.path it would delete the
// live state).
func (c *Config) socketProblems() []Problem {
	var ps []Problem
	for _, k := range c.fileKeys() {
		if SameFile(c.Admin.Socket, k[1]) {
			ps = append(ps, Problem{Path: "admin.socket", Message: fmt.Sprintf("%s is also %s%s: give the admin socket a path of its own", c.asWritten(c.Admin.Socket), k[0], c.resolvedNote(c.Admin.Socket))})
		}
	}
	return ps
}

// ErrNotSocket: something other than a unix socket stands at admin.socket.
var ErrNotSocket = errors.New("is not a unix socket")

// CheckAdminSocket checks what stands at admin.socket now: nothing, or a
// socket (a live daemon's or a stale one). Anything else is a file someone
// needs, which serve must not delete.
func (c *Config) CheckAdminSocket() error {
	fi, err := os.Lstat(c.Admin.Socket)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("%s: admin.socket %s cannot be checked: %w", c.Path, c.Admin.Socket, unwrapPathError(err))
	case fi.Mode()&fs.ModeSocket == 0:
		return fmt.Errorf("%s: admin.socket %s exists and %w: scimflare will not delete it; move the file or point admin.socket elsewhere", c.Path, c.Admin.Socket, ErrNotSocket)
	}
	return nil
}

// resolvePaths makes every relative path in c absolute against the folder
// of the config file.
func (c *Config) resolvePaths() error {
	dir, err := filepath.Abs(filepath.Dir(c.Path))
	if err != nil {
		return fmt.Errorf("cannot resolve the folder of config file %s: %w", c.Path, err)
	}
	for _, p := range []*string{&c.State.Path, &c.Admin.Socket, &c.Server.TLSCertFile, &c.Server.TLSKeyFile, &c.Cloudflare.APITokenFile, &c.State.DSNFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			abs := filepath.Join(dir, *p)
			if c.written == nil {
				c.written = map[string]string{}
			}
			c.written[abs] = *p
			*p = abs
		}
	}
	return nil
}

// asWritten is path as the config file spells it: messages quote the
// file.
func (c *Config) asWritten(path string) string {
	if w, ok := c.written[path]; ok {
		return w
	}
	return path
}

// resolvedNote names the absolute path a relative one resolved to.
func (c *Config) resolvedNote(path string) string {
	if _, ok := c.written[path]; ok {
		return " (" + path + ", relative to the config file's folder)"
	}
	return ""
}

// AdminSocketOf finds the admin socket a config file names without
// validating the file: a read-only command can then still reach the
// running daemon when the local file has a typo. It reads admin.socket
// leniently (unknown keys and bad values elsewhere ignored), falls back to
// the default, and resolves it against the file's folder. "" when the file
// cannot be read or is not YAML at all.
func AdminSocketOf(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var partial struct {
		Admin struct {
			Socket string `yaml:"socket"`
		} `yaml:"admin"`
	}
	if err := yaml.Unmarshal(raw, &partial); err != nil {
		// The socket may still be the default beside the file.
		partial.Admin.Socket = ""
	}
	c := Config{Path: path, Admin: Admin{Socket: partial.Admin.Socket}}
	if c.Admin.Socket == "" {
		c.Admin.Socket = Default().Admin.Socket
	}
	if err := c.resolvePaths(); err != nil {
		return ""
	}
	return c.Admin.Socket
}
