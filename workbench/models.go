package workbench

// modelSet holds the models a session has loaded, by name.
type modelSet struct {
	order []string
}

func newModelSet() *modelSet { return &modelSet{} }

// names lists the loaded models in load order (completion offers them).
func (m *modelSet) names() []string { return append([]string(nil), m.order...) }
