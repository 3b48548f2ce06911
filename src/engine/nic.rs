//! What the NIC says about its queues: the channel count, and the RSS hash key and
//! indirection table that decide which queue a flow's packets reach.
