package clusters

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func TestKubeconfigHoldsOneCluster(t *testing.T) {
	cfg := &rest.Config{Host: "https://127.0.0.1:40000", TLSClientConfig: rest.TLSClientConfig{CAData: []byte("ca"), CertData: []byte("cert"), KeyData: []byte("key")}}
	b, err := Kubeconfig(cfg, "kind-rehearse")
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientcmd.Load(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Clusters) != 1 || len(c.Contexts) != 1 || len(c.AuthInfos) != 1 || c.CurrentContext != "kind-rehearse" {
		t.Fatalf("config %+v", c)
	}
	cl, u := c.Clusters["kind-rehearse"], c.AuthInfos["kind-rehearse"]
	if cl.Server != cfg.Host || string(cl.CertificateAuthorityData) != "ca" || string(u.ClientCertificateData) != "cert" || string(u.ClientKeyData) != "key" {
		t.Errorf("cluster %+v user %+v", cl, u)
	}
	back, err := clientcmd.RESTConfigFromKubeConfig(b)
	if err != nil || back.Host != cfg.Host {
		t.Errorf("read back: %v %v", back, err)
	}
}

func TestCachedTool(t *testing.T) {
	root := t.TempDir()
	dir := KubectlDir(root, "sha256:0123456789abcdef0123456789")
	if dir != filepath.Join(root, "kubectl", "0123456789abcdef") {
		t.Errorf("dir %s", dir)
	}
	// A fetch that fails leaves nothing cached.
	if _, err := cachedTool(dir, "kubectl", func(dst string) error {
		_ = os.WriteFile(dst, []byte("partial"), 0o644)
		return errors.New("docker cp failed")
	}); err == nil {
		t.Fatal("want the fetch's error")
	}
	if _, err := os.Stat(filepath.Join(dir, "kubectl")); err == nil {
		t.Fatal("a failed fetch left a kubectl")
	}
	fetches := 0
	fetch := func(dst string) error { fetches++; return os.WriteFile(dst, []byte("#!/bin/sh\n"), 0o644) }
	for range 2 {
		got, err := cachedTool(dir, "kubectl", fetch)
		if err != nil || got != dir {
			t.Fatalf("cachedTool = %s, %v", got, err)
		}
	}
	st, err := os.Stat(filepath.Join(dir, "kubectl"))
	if err != nil || st.Mode()&0o111 == 0 {
		t.Errorf("kubectl not executable: %v %v", st, err)
	}
	if fetches != 1 {
		t.Errorf("fetched %d times, want once", fetches)
	}
}

// The userland proxy is found by its -host-port among the cluster's published ports.
func TestUserlandProxied(t *testing.T) {
	root := t.TempDir()
	write := func(pid, cmdline string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, pid, "cmdline"), []byte(cmdline), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("self", "x")
	write("10", "/usr/sbin/dockerd\x00")
	write("11", "/usr/sbin/docker-proxy\x00-proto\x00tcp\x00-host-ip\x00127.0.0.1\x00-host-port\x0040999\x00-container-ip\x00172.18.0.2\x00-container-port\x0040999\x00")
	r := PortRange{First: 31000, Count: 40}
	if r.UserlandProxied(root) {
		t.Errorf("a proxy of another port counted")
	}
	write("12", "/usr/sbin/docker-proxy\x00-proto\x00tcp\x00-host-ip\x00127.0.0.1\x00-host-port\x0031025\x00-container-ip\x00172.18.0.3\x00-container-port\x0031025\x00")
	if !r.UserlandProxied(root) {
		t.Errorf("the proxy of 31025 not found")
	}
}
