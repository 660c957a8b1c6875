//! zbus adapters only: names, paths, interfaces, errors, caller checks. Thin: each method authorises the
//! caller and calls one service method.
