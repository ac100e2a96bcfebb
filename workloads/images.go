package workloads

import (
	"debug/elf"
	"embed"
	"fmt"

	"github.com/rehearse-dev/rehearse/images"
)

// Images of the sample workload.
const (
	PostgresImage     = "rehearse.local/postgres:15"
	postgresBaseImage = "rehearse.local/postgres-base:15"
	OrdersImage       = "rehearse.local/orders:dev"
)

//go:embed files manifests
var files embed.FS

func embedded(name, dst string, mode int64) images.File {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err) // embedded at compile time
	}
	return images.File{Path: dst, Mode: mode, Data: b}
}

// ImageSteps are the build steps of the sample workload's images. The orders image holds the rehearse
// executable itself (entrypoint `rehearse orders`), which must be statically linked (CGO_ENABLED=0, as
// the Makefile builds it).
// debianBase is the Debian step (the build's one debootstrap) PostgreSQL's packages are added to.
func ImageSteps(rehearseExecutable string, debianBase *images.Step) ([]*images.Step, error) {
	if err := checkStatic(rehearseExecutable); err != nil {
		return nil, err
	}
	base := images.DebianImage("postgres-base", postgresBaseImage, images.Debian{
		Suite: "bookworm", From: debianBase, Packages: []string{"postgresql-15", "postgresql-client-15"},
		// Debian's postgresql-15 depends on LLVM for JIT compilation of queries; the sample runs with
		// jit = off (pg-entrypoint), so LLVM, its z3 solver and the JIT's bitcode go, with the
		// documentation and message translations: 442 MB of files become about 215 MB.
		Remove: []string{
			"usr/lib/*-linux-gnu/libLLVM-*", "usr/lib/*-linux-gnu/libz3.so*",
			"usr/lib/postgresql/15/lib/bitcode", "usr/lib/postgresql/15/lib/llvmjit*",
			"usr/share/doc/*", "usr/share/man/*", "usr/share/info/*", "usr/share/locale/*", "usr/share/lintian",
		},
	})
	pg := images.DockerfileImage("image-postgres", PostgresImage, `FROM `+postgresBaseImage+`
# Debian's package creates a default cluster; the entrypoint makes its own on the volume.
RUN rm -rf /var/lib/postgresql/15/main /etc/postgresql/15/main
COPY pg-entrypoint pg-ready pg-alive pg-follow /usr/local/bin/
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/pg-entrypoint"]
`, []*images.Step{base},
		embedded("files/postgres/pg-entrypoint", "pg-entrypoint", 0o755),
		embedded("files/postgres/pg-ready", "pg-ready", 0o755),
		embedded("files/postgres/pg-alive", "pg-alive", 0o755),
		embedded("files/postgres/pg-follow", "pg-follow", 0o755))
	app := images.ScratchImage("image-orders", OrdersImage,
		[]string{`ENTRYPOINT ["/rehearse", "orders"]`, `CMD ["serve"]`},
		images.File{Path: "/rehearse", Mode: 0o755, HostPath: rehearseExecutable},
		images.File{Path: "/tmp/.keep", Mode: 0o644})
	return []*images.Step{base, pg, app}, nil
}

// checkStatic refuses a dynamically linked executable, which could not run in a scratch image.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("orders image: %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("orders image: %s is dynamically linked; build rehearse with CGO_ENABLED=0 (make build does)", path)
		}
	}
	return nil
}
