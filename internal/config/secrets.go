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

// StaticSCIMToken is the optional static SCIM bearer token from the
// environment variable named by scim.token_env.
func (c *Config) StaticSCIMToken() string {
	if c.SCIM.TokenEnv == "" {
		return ""
	}
	return strings.TrimSpace(os.Getenv(c.SCIM.TokenEnv))
}
