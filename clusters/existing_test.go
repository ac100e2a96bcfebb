package clusters

import (
	"strings"
	"testing"
)

func TestAllowed(t *testing.T) {
	if err := Allowed("kind-rehearse", nil); err != nil {
		t.Errorf("kind contexts are allowed by default: %v", err)
	}
	err := Allowed("prod-eu-1", []string{"staging"})
	if err == nil || !strings.Contains(err.Error(), "--allow-context prod-eu-1") {
		t.Errorf("a context off the list must be refused with the flag that allows it: %v", err)
	}
	if err := Allowed("staging", []string{"staging"}); err != nil {
		t.Errorf("a listed context: %v", err)
	}
	if err := Allowed("", nil); err == nil {
		t.Errorf("an empty context must be refused")
	}
}
