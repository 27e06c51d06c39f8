package config

import (
	"fmt"
	"os"
	"strings"
)

// CloudflareToken reads the Cloudflare API token from the environment
// variable or file the config names. An empty token (and no error) means
// plan-only mode.
func (c *Config) CloudflareToken() (string, error) {
	if c.Cloudflare.APITokenFile != "" {
		raw, err := os.ReadFile(c.Cloudflare.APITokenFile)
		if err != nil {
			return "", fmt.Errorf("cannot read cloudflare.api_token_file %s: %w", c.Cloudflare.APITokenFile, unwrapPathError(err))
		}
		return strings.TrimSpace(string(raw)), nil
	}
	if c.Cloudflare.APITokenEnv == "" {
		return "", nil
	}
	return strings.TrimSpace(os.Getenv(c.Cloudflare.APITokenEnv)), nil
}

// PostgresDSN reads the PostgreSQL connection string from state.dsn_file,
// else state.dsn_env. An empty one is an error naming where it was looked
// for.
func (c *Config) PostgresDSN() (string, error) {
	if c.State.DSNFile != "" {
		raw, err := os.ReadFile(c.State.DSNFile)
		if err != nil {
			return "", fmt.Errorf("cannot read state.dsn_file %s: %w", c.State.DSNFile, unwrapPathError(err))
		}
		if dsn := strings.TrimSpace(string(raw)); dsn != "" {
			return dsn, nil
		}
		return "", fmt.Errorf("state.dsn_file %s is empty: it must hold the PostgreSQL connection string", c.State.DSNFile)
	}
	if dsn := strings.TrimSpace(os.Getenv(c.State.DSNEnv)); dsn != "" {
		return dsn, nil
	}
	return "", fmt.Errorf("state.backend is postgres but the environment variable %s (state.dsn_env) is empty: export the PostgreSQL connection string in it", c.State.DSNEnv)
}

// StaticSCIMToken is the optional static SCIM bearer token from the
// environment variable named by scim.token_env.
func (c *Config) StaticSCIMToken() string {
	if c.SCIM.TokenEnv == "" {
		return ""
	}
	return strings.TrimSpace(os.Getenv(c.SCIM.TokenEnv))
}
