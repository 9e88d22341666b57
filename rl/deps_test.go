package rl

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoEngineDependency: the controller and the evaluator reach the
// embedded engine only through llm.Sampler and trainer.Trainer, so a
// program that drives real backends does not link the CPU engine and its
// assembly. The recipes that do use the engine live in package recipe.
func TestNoEngineDependency(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps",
		"github.com/asearcher/asearcher/rl", "github.com/asearcher/asearcher/eval", "github.com/asearcher/asearcher/trainer").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "github.com/asearcher/asearcher/engine" || strings.HasPrefix(pkg, "github.com/asearcher/asearcher/engine/") {
			t.Errorf("rl, eval or trainer depends on %s", pkg)
		}
	}
}
