package kernels

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestAssemblyUpToDate regenerates kernels_amd64.s and compares it with the checked-in file, so
// the assembly cannot drift from its generator.
func TestAssemblyUpToDate(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH to run the generator")
	}
	out := filepath.Join(t.TempDir(), "kernels_amd64.s")
	cmd := exec.Command(goTool, "run", "gen_amd64.go", "-o", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run gen_amd64.go: %v\n%s", err, msg)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("kernels_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, want) {
		t.Fatal("kernels_amd64.s differs from gen_amd64.go's output: run go generate ./internal/kernels")
	}
}
