// Package config loads scimflare's YAML configuration strictly: an unknown
// key, a value of the wrong type or an unparsable duration is an error that
// names the file, the line and the key. It never reads secrets: the config
// only names the environment variables or files that hold them.
package config
