package weights

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRepo creates models--org--name with the given snapshots and refs/main.
func fakeRepo(t *testing.T, cache, id string, snapshots []string, refMain string) string {
	t.Helper()
	repo := filepath.Join(cache, "models--"+strings.ReplaceAll(id, "/", "--"))
	for _, s := range snapshots {
		if err := os.MkdirAll(filepath.Join(repo, "snapshots", s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if refMain != "" {
		os.MkdirAll(filepath.Join(repo, "refs"), 0o755)
		if err := os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(refMain+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return repo
}

func TestResolveModel(t *testing.T) {
	cache := t.TempDir()
	a := fakeRepo(t, cache, "org/with-ref", []string{"aaa", "bbb"}, "bbb")
	b := fakeRepo(t, cache, "org/single", []string{"ccc"}, "")
	fakeRepo(t, cache, "org/ambiguous", []string{"d1", "d2"}, "")
	fakeRepo(t, cache, "org/dangling", []string{"e1"}, "missing")
	local := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	tests := []struct {
		ref, want, wantErr string
	}{
		{ref: local, want: local},
		{ref: "org/with-ref", want: filepath.Join(a, "snapshots", "bbb")},
		{ref: "org/single", want: filepath.Join(b, "snapshots", "ccc")},
		{ref: "org/ambiguous", wantErr: "2 snapshots"},
		{ref: "org/dangling", wantErr: "names snapshot missing"},
		{ref: "org/absent", wantErr: "not in the cache"},
		{ref: "not-an-id", wantErr: "not a directory and not a Hugging Face id"},
		{ref: "../x", wantErr: "not a directory and not a Hugging Face id"},
	}
	for _, tc := range tests {
		got, err := ResolveModel(tc.ref)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ResolveModel(%q) = %q, %v; want error %q", tc.ref, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ResolveModel(%q) = %q, %v; want %q", tc.ref, got, err, tc.want)
		}
	}
	_, err := ResolveModel("org/absent")
	for _, part := range []string{"never downloads", cache, "HF_HUB_CACHE"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not mention %q", err, part)
		}
	}
}

func TestHubCacheDirPrecedence(t *testing.T) {
	t.Setenv("HF_HUB_CACHE", "/x/hub-cache")
	t.Setenv("HF_HOME", "/y/home")
	if got := HubCacheDir(); got != "/x/hub-cache" {
		t.Errorf("with HF_HUB_CACHE: %s", got)
	}
	t.Setenv("HF_HUB_CACHE", "")
	if got := HubCacheDir(); got != filepath.Join("/y/home", "hub") {
		t.Errorf("with HF_HOME: %s", got)
	}
	t.Setenv("HF_HOME", "")
	t.Setenv("HOME", "/z")
	if got := HubCacheDir(); got != filepath.Join("/z", ".cache", "huggingface", "hub") {
		t.Errorf("default: %s", got)
	}
}
