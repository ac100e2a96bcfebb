// Package ci checks the repository's CI configuration: every GitHub Actions workflow under
// .github/workflows is linted with actionlint (used as a library) by this package's test, so a broken
// workflow fails `go test ./...` here instead of on GitHub at night. It has no code of its own.
package ci
