//go:build !amd64 && !arm64

package lab

// sysSetns: the lab runs x86 guests from amd64 (or arm64) hosts only.
const sysSetns int = -1
