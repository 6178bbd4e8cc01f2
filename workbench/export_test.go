package workbench

import (
	"tilelab/engine/graph"
	"tilelab/engine/tensor"
	"tilelab/workbench/lang"
)

func langParse(src string) ([]*lang.Stmt, error) { return lang.Parse(src) }

func langBind(c *command, stmts []*lang.Stmt) (any, error) { return lang.Bind(c.spec, stmts[0]) }

func mustStmt(t interface{ Fatal(...any) }, src string) *lang.Stmt {
	stmts, err := lang.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	return stmts[0]
}

func opWithOutput(name string, out []float32) *graph.Op {
	return &graph.Op{Kind: graph.Add, Name: name, Layer: 1, Dst: &graph.Tensor{Name: name, Type: tensor.F32, Ne: [4]int{len(out), 1, 1, 1}, F32: out}}
}
