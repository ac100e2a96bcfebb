package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestVersionRead(t *testing.T) {
	h := http.Header{}
	h.Set("X-App-Version", "v1")
	long := `{"pad":"` + strings.Repeat("x", MaxVersionBody) + `","version":"v9"}`
	cut := `{"meta":{"build":{"version":"1.4.2"}},"items":[1,2` // cut short after the field
	for _, c := range []struct {
		name string
		v    Version
		body string
		want string
	}{
		{"header", HeaderVersion("X-App-Version"), `{"version":"v2"}`, "v1"},
		{"header absent", HeaderVersion("X-Other"), "", ""},
		{"json top", Version{JSON: []string{"version"}}, `{"color":"blue","version":"v2"}`, "v2"},
		{"json nested, skipping objects and arrays", Version{JSON: []string{"meta", "build", "version"}},
			`{"a":[{"version":"no"}],"meta":{"x":{"version":"no"},"build":{"version":"1.4.2"}}}`, "1.4.2"},
		{"json number", Version{JSON: []string{"v"}}, `{"v":3}`, "3"},
		{"json bool", Version{JSON: []string{"canary"}}, `{"canary":true}`, "true"},
		{"json array index", Version{JSON: []string{"items", "1", "v"}}, `{"items":[{"v":"a"},{"v":"b"}]}`, "b"},
		{"json index past the end", Version{JSON: []string{"items", "2"}}, `{"items":[1,2]}`, ""},
		{"json missing", Version{JSON: []string{"version"}}, `{"color":"blue"}`, ""},
		{"json null", Version{JSON: []string{"version"}}, `{"version":null}`, ""},
		{"json object is not a version", Version{JSON: []string{"meta"}}, `{"meta":{"v":1}}`, ""},
		{"json path through a scalar", Version{JSON: []string{"version", "x"}}, `{"version":"v2"}`, ""},
		{"json not JSON (an HTML error page)", Version{JSON: []string{"version"}}, `<html>502 Bad Gateway</html>`, ""},
		{"json empty body", Version{JSON: []string{"version"}}, ``, ""},
		{"json cut short after the field", Version{JSON: []string{"meta", "build", "version"}}, cut, "1.4.2"},
		{"json field beyond the bytes read", Version{JSON: []string{"version"}}, long, ""},
		{"body pattern", Version{Body: regexp.MustCompile(`<h1>(v\d+)</h1>`)}, `<html><h1>v3</h1></html>`, "v3"},
		{"body pattern no match", Version{Body: regexp.MustCompile(`<h1>(v\d+)</h1>`)}, `<html>maintenance</html>`, ""},
		{"body pattern beyond the bytes read", Version{Body: regexp.MustCompile(`"version":"(\w+)"`)}, long, ""},
		{"nowhere", Version{}, `{"version":"v2"}`, ""},
	} {
		if got := c.v.Read(h, []byte(c.body)); got != c.want {
			t.Errorf("%s: read %q, want %q", c.name, got, c.want)
		}
	}
}

func TestVersionSettingsRefused(t *testing.T) {
	for _, p := range []string{"", "a..b", ".a", "a."} {
		if _, err := ParseJSONPath(p); err == nil {
			t.Errorf("json path %q accepted", p)
		}
	}
	for _, p := range []string{`v\d+`, `(`} {
		if _, err := CompileBodyPattern(p); err == nil {
			t.Errorf("body pattern %q accepted", p)
		}
	}
	if re, err := CompileBodyPattern(`"color":"(\w+)"`); err != nil || re.NumSubexp() != 1 {
		t.Errorf("a pattern with a group: %v", err)
	}
}

// An app that says its version in its body only: the load splits its answers by the JSON field,
// and an answer that says none (an error page) counts as no version — never as the stable one.
func TestLoadReadsVersionsFromTheBody(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch k := n.Add(1); {
		case k%5 == 0:
			w.WriteHeader(503)
			fmt.Fprint(w, "<html>upstream unavailable</html>")
		case k%2 == 0:
			fmt.Fprintf(w, `{"color":"green","build":{"version":"v2"},"n":%d}`, k)
		default:
			fmt.Fprintf(w, `{"color":"blue","build":{"version":"v1"},"n":%d}`, k)
		}
	}))
	defer ts.Close()
	run, err := Start(context.Background(), Config{BaseURL: ts.URL, Targets: []Target{{Name: "get", Method: "GET", Path: "/"}},
		Rate: 100, Duration: 2 * time.Second, Dir: t.TempDir(), Version: Version{JSON: []string{"build", "version"}}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := run.Wait()
	if err != nil {
		t.Fatal(err)
	}
	w := a.Versions(a.start, a.start.Add(2*time.Second))
	v1, v2, none := w.By["v1"], w.By["v2"], w.Unversioned
	total := v1.Requests + v2.Requests + none.Requests
	if total < 150 || v1.Requests == 0 || v2.Requests == 0 {
		t.Fatalf("v1 %+v, v2 %+v, none %+v", v1, v2, none)
	}
	if v1.Failed != 0 || v2.Failed != 0 || none.Failed == 0 || none.Failed != none.Requests {
		t.Errorf("the 503 page says no version, so its failures are no version's: v1 %+v, v2 %+v, none %+v", v1, v2, none)
	}
	if len(w.By) != 2 {
		t.Errorf("versions %v: want v1 and v2 only", w.By)
	}
}

// jsonField reads what encoding/json reads: on random documents (nested objects and arrays, keys
// that repeat at other depths, strings with escapes, numbers, literals) and paths that exist or
// not, the in-place scan and a full decode agree; on the same documents cut short anywhere, the scan
// reads the full document's value or nothing, never another.
func TestJSONFieldAgreesWithEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []string{"version", "v", "build", "items", "a\"b", "é", "x\\y", "0"}
	var gen func(depth int) any
	gen = func(depth int) any {
		switch k := rng.IntN(8); {
		case depth > 3 || k < 2:
			return []any{"v1", "1.4.2", "line\nbreak \"q\" \u00e9", "", json.Number("-12.5e3"), json.Number("7"), true, false, nil}[rng.IntN(9)]
		case k < 5:
			m := map[string]any{}
			for range rng.IntN(4) {
				m[keys[rng.IntN(len(keys))]] = gen(depth + 1)
			}
			return m
		default:
			var a []any
			for range rng.IntN(4) {
				a = append(a, gen(depth+1))
			}
			return a
		}
	}
	ref := func(doc []byte, path []string) string {
		d := json.NewDecoder(bytes.NewReader(doc))
		d.UseNumber()
		var v any
		if d.Decode(&v) != nil {
			return ""
		}
		for _, p := range path {
			switch x := v.(type) {
			case map[string]any:
				v = x[p]
			case []any:
				i, err := strconv.Atoi(p)
				if err != nil || i < 0 || i >= len(x) {
					return ""
				}
				v = x[i]
			default:
				return ""
			}
		}
		switch x := v.(type) {
		case string:
			return x
		case json.Number:
			return x.String()
		case bool:
			return strconv.FormatBool(x)
		}
		return ""
	}
	found := 0
	for n := range 3000 {
		doc, err := json.Marshal(map[string]any{keys[rng.IntN(len(keys))]: gen(0), "build": gen(1)})
		if err != nil {
			t.Fatal(err)
		}
		if n%3 == 0 { // white space where JSON allows it
			var b bytes.Buffer
			_ = json.Indent(&b, doc, " ", "\t")
			doc = b.Bytes()
		}
		var path []string
		if n%2 == 0 { // a path that exists, walked from the decoded document
			var v any
			d := json.NewDecoder(bytes.NewReader(doc))
			d.UseNumber()
			_ = d.Decode(&v)
			for {
				if m, ok := v.(map[string]any); ok && len(m) > 0 {
					ks := slices.Sorted(maps.Keys(m))
					k := ks[rng.IntN(len(ks))]
					path, v = append(path, k), m[k]
				} else if a, ok := v.([]any); ok && len(a) > 0 {
					i := rng.IntN(len(a))
					path, v = append(path, strconv.Itoa(i)), a[i]
				} else {
					break
				}
			}
		} else {
			for range 1 + rng.IntN(3) {
				path = append(path, keys[rng.IntN(len(keys))])
			}
		}
		want := ref(doc, path)
		if want != "" {
			found++
		}
		if got := jsonField(doc, path); got != want {
			t.Fatalf("%s at %q: read %q, encoding/json %q", doc, path, got, want)
		}
		cut := rng.IntN(len(doc) + 1)
		if got := jsonField(doc[:cut], path); got != "" && got != want {
			t.Fatalf("%s cut at %d, at %q: read %q, the whole document says %q", doc, cut, path, got, want)
		}
	}
	if found < 500 {
		t.Errorf("only %d of 3000 paths led to a value: the test reads too little", found)
	}
}
