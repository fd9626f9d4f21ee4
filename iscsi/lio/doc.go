// Package lio is the LIO (Linux kernel target) implementation of
// iscsi.Driver. It writes configfs directly, without targetcli or rtslib,
// through the small FS interface rooted at /sys/kernel/config/target.
//
// # What it makes
//
// One fileio backstore per logical unit, in one HBA, and one target with
// one portal group per IQN:
//
//	dbroot                                    persistent reservation state (WithDBRoot)
//	core/fileio_0/<name>/                     backstore: control, udev_path,
//	                                          wwn/vpd_unit_serial, attrib/emulate_write_cache, enable
//	iscsi/<iqn>/tpgt_1/                       attrib/{generate_node_acls=0, demo_mode_write_protect=1,
//	                                          cache_dynamic_acls=0, prod_mode_write_protect=0, authentication}
//	iscsi/<iqn>/tpgt_1/lun/lun_N/<name>       -> core/fileio_0/<name>
//	iscsi/<iqn>/tpgt_1/acls/<initiator>/auth/ userid, password, userid_mutual, password_mutual
//	iscsi/<iqn>/tpgt_1/acls/<initiator>/lun_N/lun -> iscsi/<iqn>/tpgt_1/lun/lun_N
//	iscsi/<iqn>/tpgt_1/np/<ip>:<port>         IPv6 as [addr]:port
//	iscsi/<iqn>/tpgt_1/enable                 written last
//
// The backstore name is the LUN's registry name (or a stable hash, see
// backstoreName), so both boxes of a pair build the same tree.
//
// # Order
//
// Apply reads the live tree, computes the difference (planApply, pure) and
// executes it: first every removal, innermost first (mapped LUN links,
// mapped LUNs, ACLs, LUN links, LUNs, portals, TPGs, targets, backstores),
// then every creation, outermost first. A new backstore gets its control
// string, udev_path, serial and write cache flag before enable; a new TPG
// gets its attributes, LUNs, ACLs with CHAP and mappings and portals, is
// read back and checked (every LUN linked to an enabled backstore with the
// right serial, every initiator mapped read-write, portals present, demo
// mode off), and only then enabled. A target with no LUN is never enabled.
// Stop removes everything in reverse order, each TPG disabled first, and
// then checks that no backstore still holds a device (Released).
//
// # Choices
//
//   - fileio for block devices too: LIO's iblock backstore passes an
//     initiator's sub-block READ down as a sub-block bio, which crashes DRBD
//     8.4 (LAB.md); fileio on /dev/drbd0 passed the whole libiscsi suite.
//   - Write-through: never fd_buffered_io, never fd_async_io, and
//     emulate_write_cache=0 (see planner.createBackstore).
//   - Growing a LUN writes fd_dev_size to the live backstore's control
//     file (see planner.fixBackstore); a block device needs nothing. A
//     shrink, or a change of device, serial or I/O mode, removes and remakes
//     that one backstore with its LUN mappings.
//   - The dbroot is written before anything else, because the kernel takes
//     it only before a fabric module registers (WithDBRoot).
//
// Sources: drivers/target/target_core_configfs.c (dbroot, control, enable,
// wwn, attrib), target_core_file.c (fd_dev_name, fd_dev_size,
// fd_buffered_io, fd_async_io, fd_get_blocks), target_core_fabric_configfs.c
// (default groups, LUN and mapped LUN links), iscsi/iscsi_target_configfs.c
// (np names, TPG attributes, ACL auth and info), and rtslib-fb's tcm.py and
// target.py (the same operations in Python).
package lio
