package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// decodeError is one problem found while decoding, positioned in the file.
type decodeError struct {
	Line int
	Path string
	Msg  string
}

func (e *decodeError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Path, e.Msg)
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	timeType     = reflect.TypeFor[time.Time]()
)

// decoder walks a yaml.Node tree into a Go value by the `yaml` struct tags,
// refusing keys the struct does not declare. It records the line of every
// path it visits so later validation can point at the right line too.
type decoder struct {
	lines map[string]int
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.lines[path] = n.Line
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // leave the zero value (or the default already set)
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return d.decode(n, v.Elem(), path)
	}
	switch {
	case v.Type() == durationType:
		s, err := d.scalar(n, path, "a duration such as 10s, 5m or 90d")
		if err != nil {
			return err
		}
		dur, err := ParseDuration(s)
		if err != nil {
			return &decodeError{n.Line, path, fmt.Sprintf("%q is not a duration (use a number with a unit: s, m, h or d)", s)}
		}
		v.SetInt(int64(dur))
		return nil
	case v.Type() == timeType:
		s, err := d.scalar(n, path, "a date-time such as 2027-03-31T00:00:00Z")
		if err != nil {
			return err
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return &decodeError{n.Line, path, fmt.Sprintf("%q is not an RFC 3339 date-time such as 2027-03-31T00:00:00Z", s)}
		}
		v.Set(reflect.ValueOf(t))
		return nil
	}
	switch v.Kind() {
	case reflect.Struct:
		return d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return &decodeError{n.Line, path, "must be a list"}
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			if err := d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return &decodeError{n.Line, path, "must be a mapping of keys to values"}
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			elem := reflect.New(v.Type().Elem()).Elem()
			if err := d.decode(n.Content[i+1], elem, joinPath(path, key)); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(key).Convert(v.Type().Key()), elem)
		}
		v.Set(m)
		return nil
	case reflect.String:
		s, err := d.scalar(n, path, "a string")
		if err != nil {
			return err
		}
		v.SetString(s)
		return nil
	case reflect.Bool:
		s, err := d.scalar(n, path, "true or false")
		if err != nil {
			return err
		}
		b, perr := strconv.ParseBool(s)
		if perr != nil || n.Tag != "!!bool" {
			return &decodeError{n.Line, path, fmt.Sprintf("%q is not true or false", s)}
		}
		v.SetBool(b)
		return nil
	case reflect.Int, reflect.Int64, reflect.Int32:
		s, err := d.scalar(n, path, "a whole number")
		if err != nil {
			return err
		}
		i, perr := strconv.ParseInt(s, 10, 64)
		if perr != nil {
			return &decodeError{n.Line, path, fmt.Sprintf("%q is not a whole number", s)}
		}
		v.SetInt(i)
		return nil
	case reflect.Float64:
		s, err := d.scalar(n, path, "a number")
		if err != nil {
			return err
		}
		f, perr := strconv.ParseFloat(s, 64)
		if perr != nil {
			return &decodeError{n.Line, path, fmt.Sprintf("%q is not a number", s)}
		}
		v.SetFloat(f)
		return nil
	}
	return &decodeError{n.Line, path, fmt.Sprintf("unsupported type %s", v.Type())}
}

func (d *decoder) scalar(n *yaml.Node, path, want string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", &decodeError{n.Line, path, "must be " + want}
	}
	return n.Value, nil
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind != yaml.MappingNode {
		return &decodeError{n.Line, path, "must be a mapping of keys to values"}
	}
	fields := map[string]int{}
	var known []string
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" || !t.Field(i).IsExported() {
			continue
		}
		fields[tag] = i
		known = append(known, tag)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		key := k.Value
		p := joinPath(path, key)
		idx, ok := fields[key]
		if !ok {
			return &decodeError{k.Line, p, fmt.Sprintf("unknown key (known keys here: %s)", strings.Join(known, ", "))}
		}
		if seen[key] {
			return &decodeError{k.Line, p, "key appears twice"}
		}
		seen[key] = true
		if err := d.decode(n.Content[i+1], v.Field(idx), p); err != nil {
			return err
		}
		d.lines[p] = k.Line
	}
	return nil
}

func joinPath(parent, key string) string {
	key = displayKey(key)
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// displayKey quotes a key that would not read as one word on one line, so
// every problem stays one line that starts with the file name.
func displayKey(key string) string {
	for _, r := range key {
		if !unicode.IsGraphic(r) || unicode.IsSpace(r) {
			return strconv.Quote(key)
		}
	}
	return key
}

// ParseDuration is time.ParseDuration plus a day unit ("90d", "1d12h"),
// because grant lifetimes and token TTLs are naturally said in days.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	if i := strings.IndexByte(s, 'd'); i > 0 {
		days, err := strconv.Atoi(s[:i])
		const maxDays = int(math.MaxInt64 / int64(24*time.Hour))
		if err != nil || days < 0 || days > maxDays {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		total := time.Duration(days) * 24 * time.Hour
		if rest := s[i+1:]; rest != "" {
			r, err := time.ParseDuration(rest)
			// "1d-1h" or an hour count that overflows is not a duration anyone means.
			if err != nil || r < 0 || total+r < total {
				return 0, fmt.Errorf("invalid duration %q", s)
			}
			total += r
		}
		return total, nil
	}
	return time.ParseDuration(s)
}
