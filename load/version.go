package load

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// MaxVersionBody is how much of an answer's body a version is read from: the load keeps no more of
// any body (vegeta's MaxBody), and a version said further in is not read (it is unknown).
const MaxVersionBody = 4096

// Version reads which version answered a request: from a response header (the default, the
// sample's X-App-Version), a field of a JSON body, or the first group of a pattern over the body.
// What it cannot read is "" — an answer of no known version, counted apart (VersionWindow's
// Unversioned), never as any version.
type Version struct {
	Header string         // a response header's name
	JSON   []string       // the path of a field in a JSON object body: "version", or "build.version"
	Body   *regexp.Regexp // its first group, over the body
}

// HeaderVersion reads the version from header name.
func HeaderVersion(name string) Version { return Version{Header: name} }

// ParseJSONPath splits a field path: dot-separated object keys, or array indexes ("items.0.v").
func ParseJSONPath(p string) ([]string, error) {
	if p == "" {
		return nil, errors.New("is empty: want a field, such as version or build.version")
	}
	parts := strings.Split(p, ".")
	for _, s := range parts {
		if s == "" {
			return nil, fmt.Errorf("%q has an empty part: want fields joined by dots, such as build.version", p)
		}
	}
	return parts, nil
}

// CompileBodyPattern compiles a body pattern, which must have a group: the version.
func CompileBodyPattern(p string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, err
	}
	if re.NumSubexp() < 1 {
		return nil, fmt.Errorf("%q has no group: put the version in parentheses, such as \"color\":\"(\\w+)\"", p)
	}
	return re, nil
}

// Set says whether the version is read from anywhere.
func (v Version) Set() bool { return v.Header != "" || len(v.JSON) > 0 || v.Body != nil }

// FromBody says whether reading needs the answer's body.
func (v Version) FromBody() bool { return len(v.JSON) > 0 || v.Body != nil }

// String says where the version is read, as a scenario says it.
func (v Version) String() string {
	switch {
	case len(v.JSON) > 0:
		return "JSON field " + strings.Join(v.JSON, ".")
	case v.Body != nil:
		return "body pattern " + v.Body.String()
	case v.Header != "":
		return "header " + v.Header
	}
	return "nowhere"
}

// Read is the version an answer says ("" when it says none that can be read). body may be cut
// short: only its first MaxVersionBody bytes are read.
func (v Version) Read(h http.Header, body []byte) string {
	if len(body) > MaxVersionBody {
		body = body[:MaxVersionBody]
	}
	switch {
	case len(v.JSON) > 0:
		return jsonField(body, v.JSON)
	case v.Body != nil:
		m := v.Body.FindSubmatch(body)
		if len(m) < 2 {
			return ""
		}
		return string(m[1])
	case v.Header != "":
		return h.Get(v.Header)
	}
	return ""
}

// jsonField is the scalar at path in a JSON document, as text ("" when it is not there, not a
// scalar, or the document breaks off first). It scans the bytes in place, allocating only the
// answer: the load reads a version from every answer, tens of thousands a second at saturation. A
// body cut short still yields a field that came before the cut; a value the cut splits (a number
// with no delimiter after it) is not read.
func jsonField(body []byte, path []string) string {
	s := jsonScan{b: body}
	for _, key := range path {
		switch s.ws() {
		case '{':
			s.i++
			if !s.seekKey(key) {
				return ""
			}
		case '[':
			s.i++
			n, err := strconv.Atoi(key)
			if err != nil || n < 0 || !s.seekIndex(n) {
				return ""
			}
		default:
			return "" // a scalar where the path goes on, or no JSON at all
		}
	}
	return s.scalar()
}

// jsonScan walks a JSON document's bytes; i is the next byte to read.
type jsonScan struct {
	b []byte
	i int
}

// ws skips white space and returns the next byte (0 at the end).
func (s *jsonScan) ws() byte {
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return c
		}
	}
	return 0
}

// str reads a string at s.i (its opening quote): its raw contents, and whether it has escapes.
func (s *jsonScan) str() (raw []byte, escaped, ok bool) {
	if s.ws() != '"' {
		return nil, false, false
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		switch s.b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			s.i = j + 1
			return s.b[start:j], escaped, true
		}
	}
	return nil, false, false
}

// unquote is a string's value (raw: between its quotes).
func unquote(raw []byte, escaped bool) (string, bool) {
	if !escaped {
		return string(raw), true
	}
	var v string
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	if json.Unmarshal(q, &v) != nil {
		return "", false
	}
	return v, true
}

// seekKey reads an object's members (after its '{') until key's; s.i is then at its value.
func (s *jsonScan) seekKey(key string) bool {
	for {
		if s.ws() == '}' {
			return false
		}
		raw, esc, ok := s.str()
		if !ok {
			return false
		}
		k := string(raw) // the compiler does not allocate for a conversion only compared
		match := !esc && k == key
		if esc {
			u, ok := unquote(raw, esc)
			match = ok && u == key
		}
		if s.ws() != ':' {
			return false
		}
		s.i++
		if match {
			return true
		}
		if !s.skip() || !s.next('}') {
			return false
		}
	}
}

// seekIndex reads an array's elements (after its '[') to element n; s.i is then at it.
func (s *jsonScan) seekIndex(n int) bool {
	for k := 0; ; k++ {
		if s.ws() == ']' {
			return false
		}
		if k == n {
			return true
		}
		if !s.skip() || !s.next(']') {
			return false
		}
	}
}

// next reads past the ',' after a member or element; false at the container's end (close) or on
// anything else.
func (s *jsonScan) next(close byte) bool {
	switch s.ws() {
	case ',':
		s.i++
		return true
	case close:
		return false
	}
	s.i = len(s.b) // not JSON: nothing more is read
	return false
}

// skip reads past one value, however deep; false when the document breaks off inside it.
func (s *jsonScan) skip() bool {
	switch s.ws() {
	case '"':
		_, _, ok := s.str()
		return ok
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if _, _, ok := s.str(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.i++
			if depth == 0 {
				return true
			}
		}
		return false
	case 0:
		return false
	}
	_, ok := s.literal()
	return ok
}

// literal reads a number, true, false or null: its text, complete only when a delimiter follows.
func (s *jsonScan) literal() ([]byte, bool) {
	start := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return s.b[start:s.i], s.i > start
		}
		s.i++
	}
	return nil, false // cut short: 1 of 1.4.2 is not a version
}

// scalar is the value at s.i as text: a string, a number, true or false ("" for null, an object,
// an array, or anything not JSON).
func (s *jsonScan) scalar() string {
	switch c := s.ws(); {
	case c == '"':
		raw, esc, ok := s.str()
		if !ok {
			return ""
		}
		v, _ := unquote(raw, esc)
		return v
	case c == '-' || (c >= '0' && c <= '9'):
		lit, ok := s.literal()
		if !ok || !json.Valid(lit) {
			return ""
		}
		return string(lit)
	case c == 't' || c == 'f':
		lit, ok := s.literal()
		if !ok || (string(lit) != "true" && string(lit) != "false") {
			return ""
		}
		return string(lit)
	}
	return ""
}
