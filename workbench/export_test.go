package workbench

import "tilelab/workbench/lang"

func langParse(src string) ([]*lang.Stmt, error) { return lang.Parse(src) }

func langBind(c *command, stmts []*lang.Stmt) (any, error) { return lang.Bind(c.spec, stmts[0]) }

func mustStmt(t interface{ Fatal(...any) }, src string) *lang.Stmt {
	stmts, err := lang.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	return stmts[0]
}
