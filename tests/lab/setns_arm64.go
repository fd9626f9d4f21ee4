package lab

// sysSetns is setns(2) on arm64.
const sysSetns int = 268
