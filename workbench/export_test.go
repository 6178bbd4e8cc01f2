package workbench

import "tilelab/workbench/lang"

func langParse(src string) ([]*lang.Stmt, error) { return lang.Parse(src) }

func langBind(c *command, stmts []*lang.Stmt) (any, error) { return lang.Bind(c.spec, stmts[0]) }
