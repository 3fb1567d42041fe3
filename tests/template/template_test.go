// Package template holds the template's removal test, in a package of its
// own so that its builds have go test's ten minutes to themselves.
package template

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// removal is one demo or tool of the template: the files and folders that
// are its own, and its entry in app/routes.go's Demos (the element with
// that Title), or, for a tool inside a demo's entry, the field it fills.
type removal struct {
	name  string
	files []string
	entry string // the Title of its Demos element
	field string // with entry: delete only this field of the element
}

// removals are the README's "Use it as a template" list, tried one by one.
var removals = []removal{
	{"time feed", []string{"handlers/timefeed.go", "handlers/timefeed_test.go", "views/timefeed.templ", "views/timefeed_templ.go", "assets/timefeed.js", "app/timefeed", "tests/timefeed_test.go"}, "Time feed", ""},
	{"generator", []string{"handlers/generator.go", "handlers/generator_test.go", "views/generator.templ", "views/generator_templ.go", "assets/generator.js", "tests/generator_test.go"}, "Finite generator", ""},
	{"visits", []string{"handlers/visits.go", "handlers/visits_test.go", "handlers/visits_count_test.go", "views/visits.templ", "views/visits_templ.go", "assets/visits.js", "tests/visits_test.go"}, "Visits", ""},
	{"chat and fragments", []string{"handlers/chat.go", "handlers/chat_test.go", "handlers/fragments.go", "handlers/fragments_test.go", "handlers/fragments_clients.go", "handlers/fragments_clients.json", "views/chat.templ", "views/chat_templ.go", "views/fragments.templ", "views/fragments_templ.go", "views/fragments_clients.go", "views/fragments_clients.templ", "views/fragments_clients_templ.go", "assets/chat.js", "assets/fragments-clients.js", "assets/vendor/htmx.min.js", "assets/vendor/htmx-hx-sse.min.js", "assets/vendor/htmx.LICENSE", "assets/vendor/datastar.js", "assets/vendor/datastar.LICENSE", "tests/chat_test.go", "tests/fragments_test.go"}, "Chat", ""},
	{"tokens", []string{"handlers/tokens.go", "handlers/tokens_test.go", "views/tokens.templ", "views/tokens_templ.go", "assets/tokens.js", "app/tokens", "app/cli", "tests/cli_test.go", "tests/tokens_test.go"}, "Token streams", ""},
	{"connections", []string{"handlers/connections.go", "handlers/connections_test.go", "views/connections.templ", "views/connections_templ.go", "assets/connections.js", "tests/connections_test.go"}, "Connections", ""},
	{"inbox", []string{"handlers/inbox.go", "handlers/inbox_test.go", "views/inbox.templ", "views/inbox_templ.go", "assets/inbox.js", "app/inbox", "tests/inbox_test.go"}, "Inbox", ""},
	{"engines", []string{"handlers/engines.go", "handlers/engines_test.go", "handlers/engines.json", "views/engines.templ", "views/engines_templ.go", "assets/engines.js", "tests/engines_page_test.go"}, "Engines", ""},
	{"doctor (command, package, page)", []string{"handlers/doctor.go", "handlers/doctor_test.go", "views/doctor.templ", "views/doctor_templ.go", "assets/doctor.js", "app/doctor", "tests/doctor_test.go", "tests/doctorpage_test.go", "tests/proxy_test.go", "tests/peer_test.go"}, "Doctor", ""},
	{"token CLI", []string{"app/cli", "tests/cli_test.go"}, "Token streams", "Commands"},
	{"load benchmark", []string{"cmd/ssebench"}, "", ""},
}

// The template promise: on a copy of the tree with the module renamed by
// the README's own lines, each demo and each tool removed in turn (its
// files and its one entry) leaves a tree that builds, vets and passes its
// unit tests. The e2e tests of tests/ are compiled (by vet), not run.
func TestRemoveEachDemoAndTool(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a copy of the whole project once per demo and tool")
	}
	t.Parallel() // beside the tests that wait on browsers; its own removals one at a time
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	files, err := exec.Command("git", "-C", root, "ls-files").Output()
	if err != nil {
		t.Skipf("the removal test copies the files git tracks: %v", err)
	}
	readme, _ := os.ReadFile(filepath.Join(root, "README.md"))
	rename := []string{
		"go mod edit -module example.com/yourservice",
		`grep -rl '"sselab/' --include=*.go . | xargs sed -i 's#"sselab/#"example.com/yourservice/#'`,
	}
	for _, line := range rename {
		if !strings.Contains(string(readme), line) {
			t.Fatalf("the README's template steps no longer say %q", line)
		}
	}
	for _, rm := range removals {
		for _, f := range rm.files {
			if !strings.Contains(string(readme), f) {
				t.Errorf("the README does not name %s among the files of %s", f, rm.name)
			}
		}
	}
	for _, rm := range removals {
		t.Run(rm.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range strings.Fields(string(files)) {
				b, err := os.ReadFile(filepath.Join(root, f))
				if err != nil {
					continue // deleted in the work tree
				}
				os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			run := func(name string, args ...string) {
				t.Helper()
				cmd := exec.Command(name, args...)
				cmd.Dir = dir
				// -trimpath: the packages a removal leaves as they were compile
				// the same in every copy, so the build cache serves them.
				cmd.Env = append(os.Environ(), "SSELAB_REQUIRE_ALL=", "GOFLAGS=-trimpath -buildvcs=false")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
				}
			}
			for _, line := range rename {
				run("bash", "-c", line)
			}
			for _, f := range rm.files {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				if err := os.RemoveAll(filepath.Join(dir, f)); err != nil {
					t.Fatal(err)
				}
			}
			if rm.entry != "" {
				removeEntry(t, filepath.Join(dir, "app/routes.go"), rm.entry, rm.field)
			}
			run("go", "build", "./...")
			run("go", "vet", "./...")
			// The unit and handler tests. The Redis broker's and doctor's
			// are the same code as in the tree, and slow.
			out, err := exec.Command("go", "-C", dir, "list", "./...").Output()
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"test", "-short", "-count=1"}
			for _, p := range strings.Fields(string(out)) {
				if !strings.HasSuffix(p, "/tests") && !strings.HasSuffix(p, "/app/doctor") && !strings.HasSuffix(p, "/app/hub/redisbroker") {
					args = append(args, p)
				}
			}
			run("go", args...)
		})
	}
}

// removeEntry deletes the element of Demos whose Title is title (or only
// its field named field), and then the imports nothing uses any more.
func removeEntry(t *testing.T, path, title, field string) {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var from, to int = -1, -1
	ast.Inspect(f, func(n ast.Node) bool {
		cl, ok := n.(*ast.CompositeLit)
		if !ok || from >= 0 {
			return from < 0
		}
		for _, kv := range keyValues(cl) {
			if key(kv) == "Title" {
				if lit, ok := kv.Value.(*ast.BasicLit); ok {
					if v, _ := strconv.Unquote(lit.Value); v == title {
						node := ast.Node(cl)
						if field != "" {
							for _, kv := range keyValues(cl) {
								if key(kv) == field {
									node = kv
								}
							}
							if node == cl {
								t.Fatalf("entry %q has no field %s", title, field)
							}
						}
						from, to = fset.Position(node.Pos()).Offset, fset.Position(node.End()).Offset
						return false
					}
				}
			}
		}
		return true
	})
	if from < 0 {
		t.Fatalf("no entry with Title %q in %s", title, path)
	}
	if to < len(src) && src[to] == ',' {
		to++
	}
	out := string(src[:from]) + string(src[to:])
	write(t, filepath.Dir(path), filepath.Base(path), dropUnusedImports(t, out))
}

func keyValues(cl *ast.CompositeLit) []*ast.KeyValueExpr {
	var kvs []*ast.KeyValueExpr
	for _, e := range cl.Elts {
		if kv, ok := e.(*ast.KeyValueExpr); ok {
			kvs = append(kvs, kv)
		}
	}
	return kvs
}

func key(kv *ast.KeyValueExpr) string {
	if id, ok := kv.Key.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// dropUnusedImports removes the import lines whose package no identifier
// of the file names any more: what goimports does, for this one case.
func dropUnusedImports(t *testing.T, src string) string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok {
				used[id.Name] = true
			}
		}
		return true
	})
	for _, im := range f.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		parts := strings.Split(p, "/")
		name := parts[len(parts)-1]
		if len(parts) > 1 && len(name) > 1 && name[0] == 'v' && strings.Trim(name[1:], "0123456789") == "" {
			name = parts[len(parts)-2] // a major version: github.com/labstack/echo/v4 is echo
		}
		if !used[name] {
			src = strings.Replace(src, "\t"+im.Path.Value+"\n", "", 1)
		}
	}
	return src
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Each demo's removal names every file of its own: a file in handlers/,
// views/, assets/ or tests/ whose name begins with one of the demo's stems (visits
// for handlers/visits.go) is in its list, so a test or script added to a
// demo later cannot be left behind when the demo is removed. Quick, so the
// inner loop sees it before the removal test does.
func TestRemovalsNameEveryFileOfTheirDemo(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("git", "-C", root, "ls-files", "handlers", "views", "assets", "tests").Output()
	if err != nil {
		t.Skipf("lists the files git tracks: %v", err)
	}
	tracked := strings.Fields(string(out))
	for _, rm := range removals {
		if rm.entry == "" || rm.field != "" {
			continue
		}
		listed := map[string]bool{}
		stems := map[string]bool{}
		for _, f := range rm.files {
			listed[f] = true
			if dir := filepath.Dir(f); dir == "handlers" || dir == "views" || dir == "assets" {
				stems[stem(filepath.Base(f))] = true
			}
		}
		for _, f := range tracked {
			if stems[stem(filepath.Base(f))] && !listed[f] {
				t.Errorf("%s is %s's, but its removal does not name it", f, rm.name)
			}
		}
	}
}

// stem is a file name without its extension and its _test or _templ part.
func stem(name string) string {
	name, _, _ = strings.Cut(name, ".")
	name, _, _ = strings.Cut(name, "_")
	return name
}
