# cc-intake on the official Airflow image: the same pins as `pip install -r requirements.txt`,
# with the project's dags/, plugins/ and include/ baked in.
#   docker build -t cc-intake .
FROM apache/airflow:3.3.2-python3.11

# The base image runs as `airflow` (pip installs into its user site); installing as root would
# leave packages the runtime user cannot see or upgrade.
USER airflow

# Requirements first, code later: editing a DAG must not invalidate the dependency layer.
# constraints.txt sits next to requirements.txt because its `-c constraints.txt` is relative
# to it; it pins the whole tree (Airflow's constraints URL is not reachable from our machines).
# The lock carries hashes, which pip honours in a constraints file from 26.1 on.
COPY --chown=airflow:0 requirements.txt constraints.txt /opt/airflow/
RUN python -m pip install --no-cache-dir 'pip>=26.1' \
 && python -m pip install --no-cache-dir -r /opt/airflow/requirements.txt

# AIRFLOW_HOME is /opt/airflow: dags/ and plugins/ are where Airflow looks by default, and
# include/ is imported as `include.cc_intake…` from the project root (as in the Astro runtime).
# include/cc_intake/sandbox/ (dev servers and data, with its dev-only packages) stays out: see
# .dockerignore. With CC_INTAKE_SANDBOX=1 set here anyway, the DAGs show an `ingest_sandbox`
# config-error placeholder that says so.
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/

ENV PYTHONPATH=/opt/airflow \
    AIRFLOW__CORE__LOAD_EXAMPLES=False

# Landed files go to CC_INTAKE_DATA_ROOT (default $AIRFLOW_HOME/data). With several workers
# (CeleryExecutor) mount one shared POSIX volume there: the copy's atomic rename needs it.

# The copy chooses its SSH cipher itself (AES-GCM first when the CPU has AES instructions,
# chacha20 otherwise: include/cc_intake/airflow/sftp.py), so no ~/.ssh/config is needed.
