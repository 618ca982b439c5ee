"""Reference data shared by the services, such as the working calendar."""
