package images

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// File is one file placed into an image or a build context.
type File struct {
	// Path is where the file goes: absolute in an image, relative in a build context.
	Path string
	Mode int64
	// Exactly one of Data, (Step, Name), HostPath or Symlink gives the content.
	Data []byte
	// HostPath copies a file of the machine running the build.
	HostPath string
	// Step and Name copy file Name from the output directory of the file step Step.
	Step *Step
	Name string
	// Symlink makes Path a symbolic link to this target.
	Symlink string
}

func (f File) describe() string {
	switch {
	case f.Symlink != "":
		return fmt.Sprintf("%s -> %s", f.Path, f.Symlink)
	case f.Step != nil:
		return fmt.Sprintf("%s %o from %s/%s", f.Path, f.Mode, f.Step.Name, f.Name)
	case f.HostPath != "":
		return fmt.Sprintf("%s %o sha256:%s", f.Path, f.Mode, fileSum(f.HostPath))
	default:
		sum := sha256.Sum256(f.Data)
		return fmt.Sprintf("%s %o sha256:%s", f.Path, f.Mode, hex.EncodeToString(sum[:]))
	}
}

// fileSum hashes a host file's content; an unreadable file hashes to a value that never matches.
func fileSum(path string) string {
	fh, err := os.Open(path)
	if err != nil {
		return "unreadable:" + err.Error()
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "unreadable:" + err.Error()
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (f File) open() (io.ReadCloser, int64, error) {
	if f.Step != nil || f.HostPath != "" {
		src := f.HostPath
		if f.Step != nil {
			if f.Step.Dir == "" {
				return nil, 0, fmt.Errorf("%s: step %s has not been built", f.Path, f.Step.Name)
			}
			src = filepath.Join(f.Step.Dir, f.Name)
		}
		fh, err := os.Open(src)
		if err != nil {
			return nil, 0, err
		}
		st, err := fh.Stat()
		if err != nil {
			fh.Close()
			return nil, 0, err
		}
		return fh, st.Size(), nil
	}
	return io.NopCloser(strings.NewReader(string(f.Data))), int64(len(f.Data)), nil
}

func filesInputs(files []File) ([]string, []*Step) {
	var inputs []string
	var deps []*Step
	seen := map[*Step]bool{}
	for _, f := range files {
		inputs = append(inputs, "file "+f.describe())
		if f.Step != nil && !seen[f.Step] {
			seen[f.Step] = true
			deps = append(deps, f.Step)
		}
	}
	return inputs, deps
}

// ScratchImage returns an image step holding only files (like FROM scratch), with the given
// `docker import --change` instructions.
func ScratchImage(name, ref string, changes []string, files ...File) *Step {
	inputs, deps := filesInputs(files)
	inputs = append(inputs, changes...)
	return &Step{
		Name:   name,
		Ref:    ref,
		Inputs: inputs,
		Deps:   deps,
		Build: func(ctx context.Context, b *Builder, s *Step) error {
			return ImportFiles(ctx, b.Docker, ref, append(changes, "LABEL "+KeyLabel+"="+s.Key), files...)
		},
	}
}

// ImportFiles imports files as a single-layer image ref, with `docker import --change` instructions.
func ImportFiles(ctx context.Context, d Docker, ref string, changes []string, files ...File) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(pw, files)) }()
	args := []string{"import"}
	for _, c := range changes {
		args = append(args, "--change", c)
	}
	_, err := d.Run(ctx, pr, append(args, "-", ref)...)
	pr.CloseWithError(io.ErrClosedPipe)
	return err
}

// writeTar writes files as a tar stream with the parent directories each needs.
func writeTar(w io.Writer, files []File) error {
	tw := tar.NewWriter(w)
	dirs := map[string]bool{}
	var mkdirs func(dir string) error
	mkdirs = func(dir string) error {
		if dir == "/" || dir == "." || dirs[dir] {
			return nil
		}
		if err := mkdirs(path.Dir(dir)); err != nil {
			return err
		}
		dirs[dir] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(dir, "/") + "/", Mode: 0o755})
	}
	sorted := append([]File(nil), files...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	for _, f := range sorted {
		if err := mkdirs(path.Dir(f.Path)); err != nil {
			return err
		}
		name := strings.TrimPrefix(f.Path, "/")
		if f.Symlink != "" {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: f.Symlink, Mode: 0o777}); err != nil {
				return err
			}
			continue
		}
		r, size, err := f.open()
		if err != nil {
			return err
		}
		err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: f.Mode})
		if err == nil {
			_, err = io.Copy(tw, r)
		}
		r.Close()
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

// DockerfileImage returns an image step built by `docker build` from dockerfile, with files placed in
// the build context (File.Path relative to it). The Dockerfile's FROM images must be other steps (deps)
// or already present locally: nothing is pulled.
func DockerfileImage(name, ref, dockerfile string, deps []*Step, files ...File) *Step {
	inputs, fdeps := filesInputs(files)
	inputs = append(inputs, "dockerfile="+dockerfile)
	return &Step{
		Name:   name,
		Ref:    ref,
		Inputs: inputs,
		Deps:   append(append([]*Step(nil), deps...), fdeps...),
		Build: func(ctx context.Context, b *Builder, s *Step) error {
			dir, err := b.ScratchDir(s.Name)
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			if err := writeContext(dir, files); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
				return err
			}
			return b.Docker.RunStreaming(ctx, nil, "build", "--pull=false", "--label", KeyLabel+"="+s.Key, "-t", ref, dir)
		},
	}
}

func writeContext(dir string, files []File) error {
	for _, f := range files {
		dst := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if f.Symlink != "" {
			if err := os.Symlink(f.Symlink, dst); err != nil {
				return err
			}
			continue
		}
		if f.Step != nil {
			// Hard links avoid copying large binaries; fall back to a copy across file systems.
			if err := os.Link(filepath.Join(f.Step.Dir, f.Name), dst); err == nil {
				continue
			}
		}
		r, _, err := f.open()
		if err != nil {
			return err
		}
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(f.Mode))
		if err == nil {
			_, err = io.Copy(out, r)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
		}
		r.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
