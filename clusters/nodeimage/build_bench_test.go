package nodeimage

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkComponentsBuild builds every component (ComponentsBuild, the node image's one Go build)
// with an empty Go build cache, as on a new machine, and prints where the time went: each binary's
// link, the compile of the packages only it imports, and the compile of the packages several share
// (`make bench-build`; ~12 min on two cores). The module cache is the machine's: the download is
// not what this measures. REHEARSE_BENCH_GOCACHE names a cache to use instead of an empty one (a
// warm build: links only).
func BenchmarkComponentsBuild(b *testing.B) {
	for range b.N {
		dir := b.TempDir()
		cache := os.Getenv("REHEARSE_BENCH_GOCACHE")
		if cache == "" {
			cache = filepath.Join(dir, "gocache")
		}
		bt, err := ComponentsBuild().MeasureBuild(context.Background(), "components", filepath.Join(dir, "module"), cache)
		if err != nil {
			b.Fatal(err)
		}
		bt.Table(os.Stdout)
		var size int64
		entries, _ := os.ReadDir(filepath.Join(dir, "module", "out"))
		for _, e := range entries {
			if fi, err := e.Info(); err == nil {
				size += fi.Size()
			}
		}
		b.ReportMetric(bt.Wall.Seconds(), "wall-s")
		b.ReportMetric(bt.Link.Seconds(), "link-s")
		b.ReportMetric(bt.Compile.Seconds(), "compile-s")
		b.ReportMetric(float64(size)/1e6, "binaries-MB")
	}
}
