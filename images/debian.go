package images

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
)

// Debian describes a root filesystem made by debootstrap from the host's configured Debian mirror.
type Debian struct {
	Suite    string   // e.g. bookworm
	Variant  string   // debootstrap --variant, e.g. minbase
	Packages []string // --include
	// Changes are `docker import --change` instructions for the image (ENV, ENTRYPOINT, …).
	Changes []string
	// Remove are globs, relative to the root, of what the image does not need (documentation, a JIT
	// compiler's libraries): removed before the import, so the image never holds them.
	Remove []string
}

// DebianImage returns an image step that debootstraps d and imports the result as ref.
func DebianImage(name, ref string, d Debian) *Step {
	pk := append([]string(nil), d.Packages...)
	sort.Strings(pk)
	inputs := []string{"suite=" + d.Suite, "variant=" + d.Variant, "packages=" + strings.Join(pk, ",")}
	inputs = append(inputs, d.Changes...)
	for _, r := range d.Remove {
		inputs = append(inputs, "remove="+r)
	}
	return &Step{
		Name:   name,
		Ref:    ref,
		Inputs: inputs,
		Lock:   "debootstrap", // one package cache (CacheDir/debs), one writer
		Build: func(ctx context.Context, b *Builder, s *Step) error {
			return buildDebian(ctx, b, s, d)
		},
	}
}

func buildDebian(ctx context.Context, b *Builder, s *Step, d Debian) error {
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return fmt.Errorf("debootstrap is not installed (apt-get install debootstrap, or run scripts/docker-setup.sh): %w", err)
	}
	mirror, err := DebianMirror(d.Suite)
	if err != nil {
		return err
	}
	work, err := b.ScratchDir(s.Name)
	if err != nil {
		return err
	}
	defer func() {
		// An interrupted debootstrap leaves /proc and /sys mounted inside the target.
		unmountUnder(work)
		os.RemoveAll(work)
	}()
	root := filepath.Join(work, "rootfs")
	debs := filepath.Join(b.CacheDir, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return err
	}
	args := []string{"--variant=" + d.Variant, "--cache-dir=" + debs}
	if len(d.Packages) > 0 {
		args = append(args, "--include="+strings.Join(d.Packages, ","))
	}
	args = append(args, d.Suite, root, mirror)
	// Lower priority: a debootstrap waits mostly on downloads and disk, and has minutes of slack
	// beside the Go build that the node image waits for; at equal priority it took the compiler's
	// cores in between. Not too low: the three debootstraps take turns, and at nice 10 the last
	// finished after the Go build (cold build 372 s at nice 0, 362 s at nice 10, of which 17 s
	// waiting for the PostgreSQL base).
	cmd := exec.CommandContext(ctx, "nice", append([]string{"-n", "5", "debootstrap"}, args...)...)
	// On cancel, stop debootstrap and every dpkg/chroot it started, not only the script.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("debootstrap %s: %w: %s", strings.Join(args, " "), err, tail(string(out), 3000))
	}
	// Downloaded package lists and archives are not part of the image.
	for _, g := range append([]string{"var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "var/log/*.log", "var/cache/debconf/*-old"}, d.Remove...) {
		matches, _ := filepath.Glob(filepath.Join(root, g))
		for _, m := range matches {
			_ = os.RemoveAll(m)
		}
	}
	return ImportDir(ctx, b.Docker, root, s.Ref, append(d.Changes, "LABEL "+KeyLabel+"="+s.Key))
}

// unmountUnder lazily unmounts every mount point below dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			points = append(points, f[1])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// ImportDir imports the directory tree root as a single-layer image ref.
func ImportDir(ctx context.Context, d Docker, root, ref string, changes []string) error {
	tarCmd := exec.CommandContext(ctx, "tar", "--numeric-owner", "--xattrs", "-C", root, "-cf", "-", ".")
	pipe, err := tarCmd.StdoutPipe()
	if err != nil {
		return err
	}
	var tarErr strings.Builder
	tarCmd.Stderr = &tarErr
	if err := tarCmd.Start(); err != nil {
		return err
	}
	args := []string{"import"}
	for _, c := range changes {
		args = append(args, "--change", c)
	}
	args = append(args, "-", ref)
	_, ierr := d.Run(ctx, pipe, args...)
	if ierr != nil {
		_, _ = io.Copy(io.Discard, pipe) // let tar finish instead of blocking on a pipe nobody reads
	}
	werr := tarCmd.Wait()
	if ierr != nil {
		return ierr
	}
	if werr != nil {
		return fmt.Errorf("tar %s: %w: %s", root, werr, tarErr.String())
	}
	return nil
}

// DebianMirror returns the Debian archive URI the host's apt is configured with for suite (overridable
// with REHEARSE_DEBIAN_MIRROR), so builds use whatever mirror this machine can reach.
func DebianMirror(suite string) (string, error) {
	if m := os.Getenv("REHEARSE_DEBIAN_MIRROR"); m != "" {
		return m, nil
	}
	var files []string
	if _, err := os.Stat("/etc/apt/sources.list"); err == nil {
		files = append(files, "/etc/apt/sources.list")
	}
	more, _ := filepath.Glob("/etc/apt/sources.list.d/*")
	files = append(files, more...)
	for _, f := range files {
		if m := mirrorIn(f, suite); m != "" {
			return m, nil
		}
	}
	return "", fmt.Errorf("no Debian mirror for suite %q found in /etc/apt/sources.list{,.d}; set REHEARSE_DEBIAN_MIRROR", suite)
}

// mirrorIn finds, in one apt source file (one-line .list or deb822 .sources form), a URI that serves
// suite with the main component.
func mirrorIn(path, suite string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	return parseMirror(f, strings.HasSuffix(path, ".sources"), suite)
}

func parseMirror(r io.Reader, deb822 bool, suite string) string {
	sc := bufio.NewScanner(r)
	if !deb822 {
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[0] != "deb" {
				continue
			}
			i := 1
			if strings.HasPrefix(fields[i], "[") {
				for i < len(fields) && !strings.HasSuffix(fields[i], "]") {
					i++
				}
				i++
			}
			if i+2 < len(fields)+1 && i+1 < len(fields) && fields[i+1] == suite && slices.Contains(fields[i+2:], "main") {
				return fields[i]
			}
		}
		return ""
	}
	// deb822: stanzas separated by blank lines.
	stanza := map[string]string{}
	check := func() string {
		defer func() { stanza = map[string]string{} }()
		if !slices.Contains(strings.Fields(stanza["types"]), "deb") || !slices.Contains(strings.Fields(stanza["suites"]), suite) ||
			!slices.Contains(strings.Fields(stanza["components"]), "main") {
			return ""
		}
		if uris := strings.Fields(stanza["uris"]); len(uris) > 0 {
			return uris[0]
		}
		return ""
	}
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			if m := check(); m != "" {
				return m
			}
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, " ") {
			stanza[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	return check()
}
