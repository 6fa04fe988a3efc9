/**
 * Imported first by specs that load the sample's AppModule in-process: the module picks its database when it is
 * loaded (DATABASE_URL → PostgreSQL), and a DATABASE_URL of the machine's own must not send a test there.
 */
delete process.env.DATABASE_URL;
