package mapping_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/deskhook/deskhook/mapping"
)

// The repository's docs stand alone: no doc or comment may send a reader to
// a file outside the repository. What such files said is restated under
// docs/ (docs/design.md, docs/faveo-webhooks.md).

// outsideRefs are the references that point outside the repository. They
// are spelled in pieces so that this file does not name them itself.
var outsideRefs = []string{
	"../" + "shared/",
	"/work/" + "shared",
	"faveo-" + "contract.md",
	"faveo-" + "webhook-docs",
}

// docExts are the files whose text a reader follows: code comments, docs,
// configs, SQL.
var docExts = map[string]bool{".go": true, ".md": true, ".yaml": true, ".yml": true, ".sql": true}

// repoRoot is the module's root: the nearest directory above this package
// holding go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the package directory")
		}
		dir = parent
	}
}

// docFiles lists the repository's files with a docExts extension, relative
// to root: git's tracked files in a checkout, else (a source tree without
// git) every such file under root outside hidden directories.
func docFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = root
	if out, err := cmd.Output(); err == nil {
		for _, f := range bytes.Split(out, []byte{0}) {
			if name := string(f); docExts[filepath.Ext(name)] {
				files = append(files, filepath.FromSlash(name))
			}
		}
		return files
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if !d.IsDir() && docExts[filepath.Ext(path)] {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestDocsStandAlone fails when a doc, a config or a comment refers to a
// file outside the repository, and when a relative link in the Markdown
// docs points to a file that does not exist.
func TestDocsStandAlone(t *testing.T) {
	root := repoRoot(t)
	files := docFiles(t, root)
	if len(files) < 10 {
		t.Fatalf("found only %d files under %s: %v", len(files), root, files)
	}
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	for _, rel := range files {
		text, err := os.ReadFile(filepath.Join(root, rel))
		if errors.Is(err, fs.ErrNotExist) {
			continue // tracked, deleted in the working tree
		}
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(text), "\n") {
			for _, ref := range outsideRefs {
				if strings.Contains(line, ref) {
					t.Errorf("%s:%d refers to %q, outside the repository: point to docs/ instead (docs/design.md, docs/faveo-webhooks.md)",
						rel, i+1, ref)
				}
			}
			if filepath.Ext(rel) != ".md" {
				continue
			}
			for _, m := range link.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				if _, err := os.Stat(filepath.Join(root, filepath.Dir(rel), filepath.FromSlash(target))); err != nil {
					t.Errorf("%s:%d links to %s, which does not exist", rel, i+1, target)
				}
			}
		}
	}
}

// TestDocsNameEveryEvent: docs/faveo-webhooks.md's Events table has a row
// for every event deskhook emits, and no row for one it does not.
func TestDocsNameEveryEvent(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "faveo-webhooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(text)
	start := strings.Index(doc, "\n## Events\n")
	if start < 0 {
		t.Fatal(`docs/faveo-webhooks.md has no "## Events" section`)
	}
	section := doc[start+1:]
	if end := strings.Index(section[1:], "\n## "); end >= 0 {
		section = section[:end+1]
	}
	for _, ev := range mapping.AllEvents {
		if !strings.Contains(section, "\n| `"+ev+"` |") {
			t.Errorf("docs/faveo-webhooks.md, Events: no table row for %s", ev)
		}
	}
	known := map[string]bool{}
	for _, ev := range mapping.AllEvents {
		known[ev] = true
	}
	for _, m := range regexp.MustCompile("\n\\| `([a-z_]+)` \\|").FindAllStringSubmatch(section, -1) {
		if !known[m[1]] {
			t.Errorf("docs/faveo-webhooks.md, Events: a row for %s, which deskhook does not emit", m[1])
		}
	}
}
