package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"tether/internal/testmodels"
)

// TestServeSIGTERMChild is the server process of TestServeSIGTERM (skipped otherwise).
func TestServeSIGTERMChild(t *testing.T) {
	dir := os.Getenv("TETHER_SERVE_CHILD_MODEL")
	if dir == "" {
		t.Skip("the child process of TestServeSIGTERM")
	}
	if err := runServe([]string{"--model", dir, "--addr", "127.0.0.1:0", "--model-name", "tiny", "--shutdown-timeout", "5", "--backend", testmodels.Backend()}); err != nil {
		t.Fatal(err)
	}
}

// TestServeSIGTERM starts tether serve in a child process, answers a completion, then sends
// SIGTERM: the process must log its shutdown and exit 0.
func TestServeSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := testmodels.Write(t, t.TempDir(), testmodels.TinyChat, 5)
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeSIGTERMChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TETHER_SERVE_CHILD_MODEL="+dir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	addrRE := regexp.MustCompile(`msg=listening addr=(\S+)`)
	var addr string
	var log strings.Builder
	timeout := time.After(60 * time.Second)
	for addr == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the server exited before listening:\n%s", log.String())
			}
			log.WriteString(l + "\n")
			if m := addrRE.FindStringSubmatch(l); m != nil {
				addr = m[1]
			}
		case <-timeout:
			t.Fatalf("no listening line within 60 s:\n%s", log.String())
		}
	}
	resp, err := http.Post("http://"+addr+"/v1/completions", "application/json", strings.NewReader(`{"prompt": "hi", "max_tokens": 3, "seed": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"text_completion"`) {
		t.Fatalf("completion: %d %s", resp.StatusCode, body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		log.WriteString(l + "\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "msg=stopped") {
		t.Errorf("no shutdown log:\n%s", log.String())
	}
}
