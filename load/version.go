package load

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
// scalar, or the document breaks off first). It walks the tokens, decoding nothing it skips, so a
// body cut short still yields a field that came before the cut.
func jsonField(body []byte, path []string) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for _, key := range path {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		switch tok {
		case json.Delim('{'):
			if !seekKey(dec, key) {
				return ""
			}
		case json.Delim('['):
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 {
				return ""
			}
			for ; i > 0; i-- {
				if !dec.More() || skipValue(dec) != nil {
					return ""
				}
			}
			if !dec.More() {
				return ""
			}
		default:
			return "" // a scalar where the path goes on
		}
	}
	tok, err := dec.Token()
	if err != nil {
		return ""
	}
	switch t := tok.(type) {
	case string:
		return t
	case json.Number:
		return t.String()
	case bool:
		return strconv.FormatBool(t)
	}
	return "" // null, an object or an array: not a version
}

// seekKey reads an object's members until key's; the decoder is then before its value.
func seekKey(dec *json.Decoder, key string) bool {
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if k, ok := tok.(string); ok && k == key {
			return true
		}
		if skipValue(dec) != nil {
			return false
		}
	}
	return false
}

// skipValue reads past one value, however deep.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}
