"""Services and endpoints: from ServiceEntry/WorkloadEntry files, later from Kubernetes."""
