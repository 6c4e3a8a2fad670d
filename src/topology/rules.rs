//! Parsers for `ipvsadm -Sn`, `ipvsadm -Ln` and `ipvsadm -Lnc` output. (Being written.)
