package lab

// sysSetns is setns(2) on amd64: the syscall package lacks it there.
const sysSetns int = 308
