package amx

//go:generate go run ./internal/gen .
