package engine

import (
	"strings"
	"testing"
)

func TestOpenBackendGo(t *testing.T) {
	b, info, err := OpenBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Finalize()
	if info.Devices < 1 || info.Plugin.Path != "" || !strings.HasPrefix(info.String(), "go: ") {
		t.Errorf("info %+v, report %q", info, info.String())
	}
}
