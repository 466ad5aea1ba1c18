-- MLflow's tracking store lives beside valueloop's metadata, in a database of its own.
CREATE DATABASE mlflow OWNER valueloop;
