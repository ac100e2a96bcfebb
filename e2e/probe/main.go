// Command probe is the e2e tests' in-cluster helper, built into a scratch image and loaded into kind
// nodes without a registry. Modes:
//
//	probe serve [ADDR] [HOW]  HTTP server (default :8080): POST /items/ID keeps ID in this process's
//	                          memory (201), GET /items/ID answers 200 if this process has it, else 404;
//	                          any other path answers "<hostname> <path>". HOW breaks it on purpose:
//	                            listen-after=D   listens only D after starting (a slow start)
//	                            redirect-writes  answers every POST with 302 to /maintenance (a 200 page)
//	                            ack-only         answers 201 to writes it never keeps, 200 to any read
//	                            json         says $PROBE_VERSION in a JSON body on / ({"version":
//	                                         ..., "host": ...}) and in no header (an app that
//	                                         says its version only in its body)
//	                            fail=PATH    answers 503 to GET PATH (a release broken on one page)
//	                            version=V    the version it says, over $PROBE_VERSION (a release
//	                                         that differs in its arguments only)
//	                          every answer names $PROBE_VERSION in X-App-Version when it is set
//	                          (not with json);
//	                          $PROBE_HOW adds HOW words (a canary changes env, not arguments)
//	probe cat FILE            prints FILE
//	probe hostname            prints the pod's hostname
//	probe get URL             one GET with retries for 60 s; prints the body; exit 1 on failure
//	probe lookup NAME         resolves NAME with retries for 60 s; prints the addresses
//	probe write FILE TEXT     writes TEXT to FILE, syncs, reads it back; prints it
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: probe serve|get|lookup|write ...")
	}
	switch os.Args[1] {
	case "serve":
		addr := ":8080"
		if len(os.Args) > 2 {
			addr = os.Args[2]
		}
		how := map[string]string{}
		// HOW from the arguments, then from $PROBE_HOW (words): a canary can change only env.
		for _, a := range append(os.Args[min(3, len(os.Args)):], strings.Fields(os.Getenv("PROBE_HOW"))...) {
			k, v, _ := strings.Cut(a, "=")
			how[k] = v
		}
		if d, ok := how["listen-after"]; ok {
			wait, err := time.ParseDuration(d)
			if err != nil {
				fail(err.Error())
			}
			time.Sleep(wait)
		}
		_, redirect := how["redirect-writes"]
		_, ackOnly := how["ack-only"]
		host, _ := os.Hostname()
		var mu sync.Mutex
		items := map[string]bool{}
		_, jsonBody := how["json"]
		if v, ok := how["version"]; ok {
			os.Setenv("PROBE_VERSION", v)
		}
		failPath, failing := how["fail"]
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			if failing && r.URL.Path == failPath {
				http.Error(w, "probe: failing "+failPath+" on purpose", http.StatusServiceUnavailable)
				return
			}
			if jsonBody {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, "{\"host\":%q,\"path\":%q,\"build\":{\"version\":%q}}\n", host, r.URL.Path, os.Getenv("PROBE_VERSION"))
				return
			}
			fmt.Fprintf(w, "%s %s\n", host, r.URL.Path)
		})
		// Items live in this process only: with two replicas an item written through one is missing
		// from the other, which is what the acked-writes-durable e2e test needs to catch.
		http.HandleFunc("/items/", func(w http.ResponseWriter, r *http.Request) {
			id := strings.TrimPrefix(r.URL.Path, "/items/")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case redirect && r.Method == http.MethodPost:
				http.Redirect(w, r, "/maintenance", http.StatusFound)
			case ackOnly && r.Method == http.MethodPost:
				w.WriteHeader(http.StatusCreated)
			case ackOnly:
				fmt.Fprintln(w, "ok")
			case r.Method == http.MethodPost:
				items[id] = true
				w.WriteHeader(http.StatusCreated)
			case items[id]:
				fmt.Fprintln(w, id)
			default:
				http.NotFound(w, r)
			}
		})
		var h http.Handler = http.DefaultServeMux
		if v := os.Getenv("PROBE_VERSION"); v != "" && !jsonBody {
			h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-App-Version", v)
				http.DefaultServeMux.ServeHTTP(w, r)
			})
		}
		fail(http.ListenAndServe(addr, h).Error())
	case "get":
		need(3)
		retry(func() error {
			c := http.Client{Timeout: 5 * time.Second}
			resp, err := c.Get(os.Args[2])
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %s", resp.Status)
			}
			fmt.Print(string(b))
			return nil
		})
	case "lookup":
		need(3)
		retry(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			addrs, err := net.DefaultResolver.LookupHost(ctx, os.Args[2])
			if err != nil {
				return err
			}
			fmt.Println(strings.Join(addrs, " "))
			return nil
		})
	case "write":
		need(4)
		f, err := os.Create(os.Args[2])
		if err != nil {
			fail(err.Error())
		}
		if _, err := f.WriteString(os.Args[3]); err != nil {
			fail(err.Error())
		}
		if err := f.Sync(); err != nil {
			fail(err.Error())
		}
		f.Close()
		b, err := os.ReadFile(os.Args[2])
		if err != nil {
			fail(err.Error())
		}
		fmt.Println(string(b))
	case "cat":
		need(3)
		b, err := os.ReadFile(os.Args[2])
		if err != nil {
			fail(err.Error())
		}
		os.Stdout.Write(b)
	case "hostname":
		host, _ := os.Hostname()
		fmt.Println(host)
	default:
		fail("unknown mode " + os.Args[1])
	}
}

func need(n int) {
	if len(os.Args) < n {
		fail("missing argument")
	}
}

func retry(f func() error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			fail(err.Error())
		}
		fmt.Fprintln(os.Stderr, "retrying:", err)
		time.Sleep(2 * time.Second)
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "probe:", msg)
	os.Exit(1)
}
