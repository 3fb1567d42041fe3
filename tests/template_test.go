package tests

import (
	"bytes"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The README's "Start a new project" steps, on a copy of the tree: rename
// the module with the README's own command lines, delete a demo (the
// finite generator: its files, its one entry, its tests, which are the test
// functions named for it), add one, and the copy vets and passes its unit
// and handler tests.
func TestTemplateSteps(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a copy of the whole project")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := exec.Command("git", "-C", root, "ls-files").Output()
	if err != nil {
		t.Skipf("the template steps copy the files git tracks: %v", err)
	}
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
		cmd.Env = append(os.Environ(), "SSELAB_REQUIRE_ALL=")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}

	// Step 1, the README's lines as written.
	readme, _ := os.ReadFile(filepath.Join(root, "README.md"))
	step := string(readme)[strings.Index(string(readme), "## Start a new project"):]
	for _, line := range []string{
		"go mod edit -module example.com/yourservice",
		`grep -rl '"sselab/' --include=*.go . | xargs sed -i 's#"sselab/#"example.com/yourservice/#'`,
	} {
		if !strings.Contains(step, line) {
			t.Fatalf("the README's steps no longer say %q", line)
		}
		run("bash", "-c", line)
	}

	// Step 3: delete the finite generator: its files, its entry, its tests.
	for _, f := range []string{"handlers/generator.go", "handlers/generator_test.go", "views/generator.templ", "views/generator_templ.go", "assets/generator.js"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	edit(t, filepath.Join(dir, "app/routes.go"), func(s string) string {
		start := strings.Index(s, "\t\t{title: \"Finite generator\"")
		end := strings.Index(s[start+1:], "\n\t\t{title:") + start + 2
		return s[:start] + s[end:]
	})
	for _, f := range []string{"handlers/fuzz_test.go", "handlers/limits_test.go"} {
		dropFuncs(t, filepath.Join(dir, f), "Generator")
	}

	// ...and add one: a handler file, a view, a script, one entry.
	write(t, dir, "handlers/hello.go", `package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"example.com/yourservice/app/sse"
	"example.com/yourservice/views"
)

// Hello is the smallest stream demo: one greeting, then the end.
type Hello struct{}

func (Hello) Page(c echo.Context) error { return render(c, http.StatusOK, views.HelloPage()) }

func (Hello) Stream(c echo.Context) error {
	s, err := sse.Open(c.Response())
	if err != nil {
		return err
	}
	return s.Send(sse.Event{Type: "hello", Data: "hello, world"})
}
`)
	write(t, dir, "views/hello.templ", `package views

templ HelloPage() {
	@Layout("Hello") {
		<h1>Hello</h1>
		<ol data-testid="events"></ol>
		<script src="/assets/hello.js"></script>
	}
}
`)
	write(t, dir, "assets/hello.js", `"use strict";
const es = new EventSource("/hello/stream");
es.addEventListener("hello", (ev) => {
  const li = document.createElement("li");
  li.textContent = ev.data;
  document.querySelector("[data-testid=events]").append(li);
});
`)
	edit(t, filepath.Join(dir, "app/routes.go"), func(s string) string {
		return strings.Replace(s, "\treturn []demo{\n", "\treturn []demo{\n"+
			"\t\t{title: \"Hello\", nav: \"Hello\", href: \"/hello/\", seed: \"none\", lesson: \"The smallest stream.\", routes: []route{\n"+
			"\t\t\t{methods: get, path: \"/hello/\", handler: handlers.Hello{}.Page, doc: \"Hello page.\", curl: \"curl {base}/hello/\"},\n"+
			"\t\t\t{methods: get, path: \"/hello/stream\", handler: handlers.Hello{}.Stream, stream: true, doc: \"One greeting.\", curl: \"curl -N {base}/hello/stream\"},\n"+
			"\t\t}},\n", 1)
	})
	write(t, dir, "handlers/hello_test.go", `package handlers_test

import (
	"net/http"
	"testing"
)

func TestHello(t *testing.T) {
	ts := newServer(t)
	w := ts.do(http.MethodGet, "/hello/stream", "")
	if evs := parse(t, w.Body.String()); len(evs) != 1 || evs[0].Data != "hello, world" {
		t.Fatalf("got %+v", evs)
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/event-stream; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	home := ts.do(http.MethodGet, "/", "").Body.String()
	for _, want := range []string{`+"`"+`<a href="/hello/">Hello</a>`+"`"+`, "curl -N http://example.com/hello/stream"} {
		wantContains(t, home, want)
	}
	if w := ts.do(http.MethodGet, "/eventsource/page", ""); w.Code != http.StatusNotFound {
		t.Errorf("the deleted demo's page: %d", w.Code)
	}
}
`)

	// Step 4.
	run("go", "tool", "templ", "generate")
	run("go", "vet", "./...")
	// The unit and handler tests; the Redis broker's and the end-to-end
	// ones are the same code as here, and slow.
	run("go", "test", "./app", "./app/hub", "./app/sse/...", "./app/tokens", "./app/metrics", "./handlers/...")
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func edit(t *testing.T, path string, f func(string) string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Dir(path), filepath.Base(path), f(string(b)))
}

// dropFuncs deletes the functions whose name contains word.
func dropFuncs(t *testing.T, path, word string) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var kept []ast.Decl
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && strings.Contains(fn.Name.Name, word) {
			continue
		}
		kept = append(kept, d)
	}
	f.Decls = kept
	f.Comments = nil // comments of dropped functions would be left behind
	var buf bytes.Buffer
	if err := format.Node(&buf, fset, f); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Dir(path), filepath.Base(path), buf.String())
}
