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
	// From, when set, is another Debian step of the same suite to start from instead of a
	// debootstrap of its own: its root filesystem, with Packages installed by apt-get in a chroot
	// (what debootstrap does after its first stage, without unpacking the base again).
	From *Step
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
	var deps []*Step
	if d.From != nil {
		deps = append(deps, d.From)
		inputs = append(inputs, "apt-get install --no-install-recommends in a chroot of the base")
	}
	return &Step{
		Name:   name,
		Ref:    ref,
		Inputs: inputs,
		Deps:   deps,
		Lock:   "debootstrap", // one package cache (CacheDir/debs), one writer
		Build: func(ctx context.Context, b *Builder, s *Step) error {
			if d.From != nil {
				return buildDebianFrom(ctx, b, s, d)
			}
			return buildDebian(ctx, b, s, d)
		},
	}
}

func buildDebian(ctx context.Context, b *Builder, s *Step, d Debian) error {
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return fmt.Errorf("debootstrap is not installed (apt-get install debootstrap, or run scripts/docker-setup.sh): %w", err)
	}
	mirror, root, cleanup, err := debianWork(b, s, d)
	if err != nil {
		return err
	}
	defer cleanup()
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
	out, err := niceGroup(ctx, "debootstrap", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("debootstrap %s: %w: %s", strings.Join(args, " "), err, tail(string(out), 3000))
	}
	return importRoot(ctx, b, s, d, root)
}

// debianWork is what both ways of building a Debian root start with: the mirror to build from, and
// the step's scratch directory with the root's path in it; cleanup unmounts what an interrupted
// debootstrap or chroot left mounted there (/proc, /sys, /dev, the package cache) and removes it.
func debianWork(b *Builder, s *Step, d Debian) (mirror, root string, cleanup func(), err error) {
	if mirror, err = DebianMirror(d.Suite); err != nil {
		return "", "", nil, err
	}
	work, err := b.ScratchDir(s.Name)
	if err != nil {
		return "", "", nil, err
	}
	cleanup = func() {
		unmountUnder(work)
		os.RemoveAll(work)
	}
	return mirror, filepath.Join(work, "rootfs"), cleanup, nil
}

// niceGroup runs name at nice 5 in a process group of its own, killed whole on cancel: debootstrap's
// or apt's dpkg and maintainer scripts stop with it, not only the command.
func niceGroup(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nice", append([]string{"-n", "5", name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

// importRoot removes from root what the image does not hold (downloaded package lists and
// archives, logs, d.Remove) and imports it as the step's image.
func importRoot(ctx context.Context, b *Builder, s *Step, d Debian, root string) error {
	for _, g := range append([]string{"var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "var/log/*.log", "var/log/apt/*",
		"var/cache/debconf/*-old", "var/cache/apt/*.bin"}, d.Remove...) {
		matches, _ := filepath.Glob(filepath.Join(root, g))
		for _, m := range matches {
			_ = os.RemoveAll(m)
		}
	}
	return ImportDir(ctx, b.Docker, root, s.Ref, append(d.Changes, "LABEL "+KeyLabel+"="+s.Key))
}

// buildDebianFrom unpacks d.From's image into a root and installs d.Packages there with apt-get in a
// chroot, from the host's mirror (the chroot shares the host's network), with the debootstraps'
// package cache as apt's archive directory. No service starts (policy-rc.d), and /proc, /sys and /dev
// are mounted only while apt runs.
func buildDebianFrom(ctx context.Context, b *Builder, s *Step, d Debian) error {
	mirror, root, cleanup, err := debianWork(b, s, d)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	if err := exportImage(ctx, b.Docker, d.From.Ref, root); err != nil {
		return err
	}
	debs := filepath.Join(b.CacheDir, "debs")
	if err := os.MkdirAll(filepath.Join(debs, "partial"), 0o755); err != nil {
		return err
	}
	files := map[string]string{
		"etc/apt/sources.list": fmt.Sprintf("deb %s %s main\n", mirror, d.Suite),
		// The mirror may be a snapshot whose Release files are past their Valid-Until date, as
		// debootstrap, which does not check it, accepts.
		"etc/apt/apt.conf.d/99rehearse-build": "Acquire::Check-Valid-Until \"false\";\nAcquire::Check-Date \"false\";\n" +
			"APT::Install-Recommends \"false\";\nDpkg::Options { \"--force-unsafe-io\"; };\n",
		"usr/sbin/policy-rc.d": "#!/bin/sh\nexit 101\n",
	}
	for p, data := range files {
		if err := os.WriteFile(filepath.Join(root, p), []byte(data), 0o755); err != nil {
			return err
		}
	}
	// apt resolves the mirror with the host's resolver; the image keeps the base's file.
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return err
	}
	resolvPath := filepath.Join(root, "etc/resolv.conf")
	baseResolv, baseErr := os.Readlink(resolvPath)
	baseData, _ := os.ReadFile(resolvPath)
	_ = os.Remove(resolvPath)
	if err := os.WriteFile(resolvPath, resolv, 0o644); err != nil {
		return err
	}
	for _, m := range []struct{ src, dst, fstype string }{
		{"proc", "proc", "proc"}, {"sysfs", "sys", "sysfs"}, {"/dev", "dev", ""}, {debs, "var/cache/apt/archives", ""},
	} {
		dst := filepath.Join(root, m.dst)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		flags := uintptr(0)
		if m.fstype == "" {
			flags = syscall.MS_BIND
		}
		if err := syscall.Mount(m.src, dst, m.fstype, flags, ""); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.src, dst, err)
		}
	}
	apt := func(args ...string) error {
		cmd := niceGroup(ctx, "chroot", append([]string{root, "apt-get", "-q", "-y"}, args...)...)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C"}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s in a chroot of %s: %w: %s", strings.Join(args, " "), d.From.Ref, err, tail(string(out), 3000))
		}
		return nil
	}
	if err := apt("update"); err != nil {
		return err
	}
	if err := apt(append([]string{"install"}, d.Packages...)...); err != nil {
		return err
	}
	unmountUnder(root)
	for _, p := range []string{"usr/sbin/policy-rc.d", "etc/apt/apt.conf.d/99rehearse-build"} {
		_ = os.Remove(filepath.Join(root, p))
	}
	_ = os.Remove(resolvPath)
	if baseErr == nil {
		_ = os.Symlink(baseResolv, resolvPath)
	} else {
		_ = os.WriteFile(resolvPath, baseData, 0o644)
	}
	return importRoot(ctx, b, s, d, root)
}

// exportImage writes the file system of image ref into dir (docker create + export).
func exportImage(ctx context.Context, d Docker, ref, dir string) error {
	id, err := d.Run(ctx, nil, "create", ref, "/bin/true")
	if err != nil {
		return err
	}
	id = strings.TrimSpace(id)
	defer d.Run(context.Background(), nil, "rm", "-f", id) //nolint:errcheck
	export := d.Command(ctx, "export", id)
	pipe, err := export.StdoutPipe()
	if err != nil {
		return err
	}
	var exportErr strings.Builder
	export.Stderr = &exportErr
	if err := export.Start(); err != nil {
		return err
	}
	untar := exec.CommandContext(ctx, "tar", "--numeric-owner", "--xattrs", "-x", "-C", dir, "-f", "-")
	untar.Stdin = pipe
	out, uerr := untar.CombinedOutput()
	werr := export.Wait()
	if uerr != nil {
		return fmt.Errorf("unpack %s: %w: %s", ref, uerr, out)
	}
	if werr != nil {
		return fmt.Errorf("docker export %s: %w: %s", ref, werr, exportErr.String())
	}
	return nil
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
